#define BOOST_TEST_MODULE pretty_tables
#include "core/images/pretty_tables.h"

#include <boost/test/unit_test.hpp>

namespace crpp::images::pretty {
namespace {

BOOST_AUTO_TEST_CASE(flags_in_table_order_with_leftover_bits) {
  std::string s;
  BOOST_REQUIRE(FormatFlags("mmap.prot", 0xf, s));
  BOOST_TEST(s == "PROT_READ | PROT_WRITE | PROT_EXEC | 0x8");
  BOOST_REQUIRE(FormatFlags("rfile.flags", 02 | 0100000 | 02000000 | 010000000, s));
  BOOST_TEST(s == "O_RDWR | O_LARGEFILE | O_CLOEXEC | 0x200000");
  BOOST_REQUIRE(FormatFlags("pmap.flags", 0, s));
  BOOST_TEST(s == "");
  BOOST_TEST(!FormatFlags("no.such", 1, s));
  BOOST_TEST(*ParseFlags("mmap.prot", "PROT_READ | PROT_EXEC | 0x8") == 0xdu);
  BOOST_TEST(*ParseFlags("mmap.prot", "") == 0u);
  BOOST_TEST(!ParseFlags("mmap.prot", "PROT_FOO").ok());
}

BOOST_AUTO_TEST_CASE(devices_in_both_encodings) {
  BOOST_TEST(FormatDev((8u << 20) | 1, false) == "8:1");
  BOOST_TEST(FormatDev(0x0801, true) == "8:1");
  BOOST_TEST(*ParseDev("8:1", false) == ((8u << 20) | 1));
  for (uint64_t v : {0x0801ull, 0xfff12345ull, 0x103ull}) {
    BOOST_TEST(*ParseDev(FormatDev(v, true), true) == v);
    BOOST_TEST(*ParseDev(FormatDev(v, false), false) == v);
  }
  BOOST_TEST(!ParseDev("8-1", false).ok());
}

BOOST_AUTO_TEST_CASE(ip_addresses_as_python_prints_them) {
  BOOST_TEST(*FormatIp({0x0100007f}) == "127.0.0.1");
  auto v6 = [](std::initializer_list<uint16_t> groups) {
    uint8_t b[16];
    int i = 0;
    for (uint16_t g : groups) {
      b[i++] = static_cast<uint8_t>(g >> 8);
      b[i++] = static_cast<uint8_t>(g);
    }
    std::vector<uint32_t> w(4);
    memcpy(w.data(), b, 16);
    return w;
  };
  BOOST_TEST(*FormatIp(v6({1, 0, 0, 2, 0, 0, 3, 4})) == "1::2:0:0:3:4");
  BOOST_TEST(*FormatIp(v6({1, 0, 0, 2, 0, 0, 0, 3})) == "1:0:0:2::3");
  BOOST_TEST(*FormatIp(v6({0, 0, 0, 0, 0, 0, 0, 0})) == "::");
  BOOST_TEST(*FormatIp(v6({1, 0, 2, 3, 4, 5, 6, 7})) == "1:0:2:3:4:5:6:7");
  BOOST_TEST(*FormatIp(v6({0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304})) == "::ffff:102:304");
  BOOST_TEST(!FormatIp({1, 2}).ok());
  BOOST_TEST(*ParseIp("fe80::1") == v6({0xfe80, 0, 0, 0, 0, 0, 0, 1}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(base64_with_python_line_breaks) {
  BOOST_TEST(Base64Lines("") == "");
  BOOST_TEST(Base64Lines("abc") == "YWJj\n");
  std::string line;
  for (int i = 0; i < 19; ++i) line += "YWFh";  // base64 of 57 'a's: one full 76-char line
  BOOST_TEST(Base64Lines(std::string(57, 'a')) == line + "\n");
  BOOST_TEST(Base64Lines(std::string(58, 'a')) == line + "\nYQ==\n");
  BOOST_TEST(*Base64Decode(Base64Lines(std::string(200, '\xff'))) == std::string(200, '\xff'));
}

BOOST_AUTO_TEST_CASE(quoted_printable_as_quopri) {
  std::string in = std::string("\0abc/=\xff x\t", 10) + std::string(80, 'y') + "\n";
  std::string want =
      "=00abc/=3D=FF x\t" + std::string(59, 'y') + "=\n" + std::string(21, 'y') + "\n";
  BOOST_TEST(QuotedPrintable(in) == want);
  BOOST_TEST(QuotedPrintableDecode(want) == in);
  BOOST_TEST(QuotedPrintable("trailing space ") == "trailing space=20");
  BOOST_TEST(QuotedPrintable(".") == "=2E");
}

BOOST_AUTO_TEST_CASE(integers_in_every_base) {
  BOOST_TEST(*ParseIntAuto("0x1f") == 31);
  BOOST_TEST(*ParseIntAuto("-0x5") == -5);
  BOOST_TEST(*ParseIntAuto("0o17") == 15);
  BOOST_TEST(*ParseIntAuto("0b101") == 5);
  BOOST_TEST(static_cast<uint64_t>(*ParseIntAuto("0xffffffffffffffff")) == ~0ull);
  BOOST_TEST(!ParseIntAuto("0x").ok());
  BOOST_TEST(!ParseIntAuto("12z").ok());
  BOOST_TEST(!ParseIntAuto("0x1ffffffffffffffff").ok());
}

}  // namespace
}  // namespace crpp::images::pretty
