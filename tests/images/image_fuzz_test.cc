// Robustness of the image reader and crit's codec: thousands of truncated,
// bit-flipped and size-corrupted images must each end in a clean error that
// names the file, or decode to something that encodes again; never a crash.
#define BOOST_TEST_MODULE image_fuzz
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <random>

#include "core/images/crit_codec.h"
#include "core/images/image_io.h"
#include "tests/images/fixtures.h"
#include "tests/testing/files.h"

namespace crpp::images {
namespace {

using testing::FreshDir;
using testing::Slurp;
using testing::Spit;
using testing::TempDir;

struct Tally {
  int inputs = 0;
  int errors = 0;
  int decoded = 0;
};

// Decodes `bytes` as an image file; a failure must be an error naming it.
void Check(const std::string& bytes, const std::string& what, Tally& t) {
  std::string path = TempDir() + "/fuzz.img";
  Spit(path, bytes);
  ++t.inputs;
  auto r = ImageReader::Open(path);
  if (!r.ok()) {
    ++t.errors;
    BOOST_REQUIRE_MESSAGE(std::string(r.status().message()).find(path) != std::string::npos,
                          what << ": error without the file name: " << r.status().message());
    return;
  }
  auto doc = DecodeImage(**r, {.pretty = t.inputs % 2 == 0});
  if (!doc.ok()) {
    ++t.errors;
    std::string msg(doc.status().message());
    BOOST_REQUIRE_MESSAGE(
        msg.find(path) != std::string::npos || msg.find("criu.") != std::string::npos,
        what << ": error without context: " << msg);
    return;
  }
  ++t.decoded;
  // Whatever decoded must be valid JSON that encodes, or is refused cleanly
  // (e.g. required fields a flipped bit removed).
  auto parsed = Json::Parse(doc->Dump());
  BOOST_REQUIRE_MESSAGE(parsed.ok(), what << ": decoder produced bad JSON");
  std::string out = TempDir() + "/fuzz-out.img";
  int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  BOOST_REQUIRE(fd >= 0);
  (void)EncodeImage(*parsed, fd, out);
  close(fd);
}

BOOST_AUTO_TEST_CASE(mutated_images_fail_cleanly) {
  std::string dir = TempDir() + "/fuzz-fixtures";
  mkdir(dir.c_str(), 0700);
  BOOST_REQUIRE(testing::WriteFixtureDump(dir).ok());
  std::mt19937_64 rng(42);
  Tally t;
  for (const std::string& name : testing::FixtureImageNames()) {
    std::string orig = Slurp(dir + "/" + name);
    BOOST_REQUIRE(!orig.empty());
    // Every truncation point.
    for (size_t n = 0; n < orig.size(); ++n) Check(orig.substr(0, n), name + " cut", t);
    // Random bit flips, one to eight at a time.
    for (int i = 0; i < 300; ++i) {
      std::string m = orig;
      int flips = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < flips; ++k) m[rng() % m.size()] ^= static_cast<char>(1 << (rng() % 8));
      Check(m, name + " flip", t);
    }
    // Size fields and payload lengths replaced by extreme values.
    for (int i = 0; i < 40; ++i) {
      std::string m = orig;
      size_t at = 8 + rng() % (m.size() > 12 ? m.size() - 12 : 1);
      uint32_t v = i % 2 ? 0xffffffffu : static_cast<uint32_t>(rng());
      if (at + 4 <= m.size()) memcpy(m.data() + at, &v, 4);
      Check(m, name + " size", t);
    }
    // Garbage appended after valid entries.
    Check(orig + std::string("\x05\x00\x00", 3), name + " tail", t);
  }
  BOOST_TEST_MESSAGE(t.inputs << " inputs: " << t.errors << " errors, " << t.decoded << " decoded");
  BOOST_TEST(t.inputs > 5000);
  BOOST_TEST(t.errors > 1000);  // the mutations really broke images
}

BOOST_AUTO_TEST_CASE(bad_json_is_refused_with_a_reason) {
  std::string out = TempDir() + "/enc.img";
  const char* cases[] = {
      R"({"magic": "NOPE", "entries": []})",
      R"({"entries": []})",
      R"({"magic": "CORE"})",
      R"({"magic": "PSTREE", "entries": [{"pid": "abc"}]})",
      R"({"magic": "PSTREE", "entries": [{"pid": 1, "ppid": 0, "pgid": 1}]})",
      R"({"magic": "PSTREE", "entries": [{"pid": 1, "bogus": 0}]})",
      R"({"magic": "PSTREE", "entries": [{"pid": 99999999999}]})",
      R"({"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 5, "extra": "YQ==\n"}]})",
      R"({"magic": "VMAS", "entries": [{"start": 1, "end": 2, "pgoff": 0, "shmid": 0, "prot": "PROT_FOO", "flags": 0, "status": 0, "fd": 0}]})",
  };
  for (const char* c : cases) {
    auto doc = Json::Parse(c);
    BOOST_REQUIRE(doc.ok());
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    absl::Status s = EncodeImage(*doc, fd, out);
    close(fd);
    BOOST_TEST(!s.ok(), c);
    BOOST_TEST_MESSAGE(c << " -> " << s.message());
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string junk(rng() % 64, ' ');
    for (char& ch : junk) ch = "{}[]\":,0123456789abcdefnultrsx\\ \n-.eE"[rng() % 38];
    auto doc = Json::Parse(junk);  // must return, never crash
    if (doc.ok()) {
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      (void)EncodeImage(*doc, fd, out);
      close(fd);
    }
  }
}

}  // namespace
}  // namespace crpp::images
