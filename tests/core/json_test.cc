#define BOOST_TEST_MODULE json
#include "core/json.h"

#include <boost/test/unit_test.hpp>

namespace crpp {
namespace {

BOOST_AUTO_TEST_CASE(dumps_like_python_json) {
  Json o = Json::Object();
  o.Set("magic", Json::String("CORE"));
  Json arr = Json::Array();
  arr.Push(Json::Uint(18446744073709551615ull));
  arr.Push(Json::Int(-5));
  arr.Push(Json::Bool(true));
  arr.Push(Json::Object());
  arr.Push(Json::Array());
  o.Set("entries", std::move(arr));
  BOOST_TEST(o.Dump() ==
             R"({"magic": "CORE", "entries": [18446744073709551615, -5, true, {}, []]})");
  BOOST_TEST(o.Dump(4) ==
             "{\n    \"magic\": \"CORE\",\n    \"entries\": [\n        18446744073709551615,\n"
             "        -5,\n        true,\n        {},\n        []\n    ]\n}");
}

BOOST_AUTO_TEST_CASE(escapes_like_ensure_ascii) {
  BOOST_TEST(Json::String("a\"b\\c\n\t\x01\x7f/").Dump() == R"("a\"b\\c\n\t\u0001\u007f/")");
  BOOST_TEST(Json::String("\xc3\xa9").Dump() == R"("\u00e9")");                // é
  BOOST_TEST(Json::String("\xf0\x9f\x98\x80").Dump() == R"("\ud83d\ude00")");  // emoji
  BOOST_TEST(Json::Double(1.0).Dump() == "1.0");
  BOOST_TEST(Json::Double(0.1).Dump() == "0.1");
}

BOOST_AUTO_TEST_CASE(parses_and_keeps_integers_exact) {
  auto j = Json::Parse(R"( {"a": [18446744073709551615, -9223372036854775808, 1.5e3],
                            "s": "x\u00e9\ud83d\ude00\n", "t": true, "n": null} )");
  BOOST_REQUIRE(j.ok());
  BOOST_TEST(*j->Find("a")->items()[0].AsUint64() == 18446744073709551615ull);
  BOOST_TEST(*j->Find("a")->items()[1].AsInt64() == INT64_MIN);
  BOOST_TEST(!j->Find("a")->items()[2].AsInt64().ok());
  BOOST_TEST(*j->Find("a")->items()[2].AsDouble() == 1500.0);
  BOOST_TEST(j->Find("s")->text() == "x\xc3\xa9\xf0\x9f\x98\x80\n");
  BOOST_TEST(j->Find("n")->is_null());
  BOOST_TEST(!Json::Parse(R"({"a": 18446744073709551616})")->Find("a")->AsUint64().ok());
}

BOOST_AUTO_TEST_CASE(rejects_malformed_text_with_position) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"\\x\"", "01x", "[1] 2", "{\"a\":}",
                          "\"unterminated", "-", "1e"}) {
    auto j = Json::Parse(bad);
    BOOST_TEST(!j.ok(), bad);
    if (!j.ok()) BOOST_TEST(std::string(j.status().message()).find("at byte") != std::string::npos);
  }
  std::string deep(1000, '[');
  BOOST_TEST(!Json::Parse(deep).ok());
}

}  // namespace
}  // namespace crpp
