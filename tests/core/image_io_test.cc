#define BOOST_TEST_MODULE image_io
#include "core/images/image_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>

#include "pipe-data.pb.h"
#include "pipe.pb.h"
#include "tests/testing/files.h"

using PipeDataEntry = criu::pipe_data_entry;
using PipeEntry = criu::pipe_entry;

namespace crpp::images {
namespace {

using testing::FreshDir;
using testing::Slurp;
using testing::Spit;
using testing::TempDir;

BOOST_AUTO_TEST_CASE(writes_criu_framing) {
  std::string path = TempDir() + "/pipes.img";
  auto w = TypedImageWriter<PipeEntry>::Create(path, *FindKindByName("PIPES"));
  BOOST_REQUIRE(w.ok());
  PipeEntry e;
  e.set_id(3);
  e.set_pipe_id(77);
  e.set_flags(0x800);
  auto* fown = e.mutable_fown();
  fown->set_uid(0);
  fown->set_euid(0);
  fown->set_signum(0);
  fown->set_pid_type(0);
  fown->set_pid(0);
  BOOST_REQUIRE(w->Write(e).ok());
  BOOST_REQUIRE(w->Close().ok());
  std::string bytes = Slurp(path);
  std::string body = e.SerializeAsString();
  std::string want("\x19\x43\x56\x54\x55\x35\x51\x56", 8);  // IMG_COMMON, PIPES
  uint32_t size = body.size();
  want.append(reinterpret_cast<const char*>(&size), 4);
  want += body;
  BOOST_TEST(bytes == want);
}

BOOST_AUTO_TEST_CASE(round_trip_with_payload) {
  std::string path = TempDir() + "/pipes-data.img";
  auto w = ImageWriter::Create(path, *FindKindByName("PIPES_DATA"));
  BOOST_REQUIRE(w.ok());
  for (int i = 0; i < 100; ++i) {
    PipeDataEntry d;
    d.set_pipe_id(i);
    std::string data(i * 7, static_cast<char>('a' + i % 26));
    d.set_bytes(data.size());
    BOOST_REQUIRE((*w)->Write(d).ok());
    BOOST_REQUIRE((*w)->WritePayload(data).ok());
  }
  BOOST_REQUIRE((*w)->Close().ok());

  auto r = ImageReader::Open(path);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST((*r)->kind().name == "PIPES_DATA");
  for (int i = 0; i < 100; ++i) {
    PipeDataEntry d;
    auto more = (*r)->Next(d);
    BOOST_REQUIRE(more.ok());
    BOOST_REQUIRE(*more);
    BOOST_TEST(d.pipe_id() == static_cast<uint32_t>(i));
    std::string data;
    BOOST_REQUIRE((*r)->ReadPayload(d.bytes(), data).ok());
    BOOST_TEST(data == std::string(i * 7, static_cast<char>('a' + i % 26)));
  }
  PipeDataEntry d;
  auto more = (*r)->Next(d);
  BOOST_REQUIRE(more.ok());
  BOOST_TEST(!*more);
}

BOOST_AUTO_TEST_CASE(errors_name_file_offset_and_expectation) {
  std::string path = TempDir() + "/bad.img";
  // Valid head, then a size field promising 100 bytes and only 3 present.
  std::string bytes("\x19\x43\x56\x54\x55\x35\x51\x56", 8);
  uint32_t size = 100;
  bytes.append(reinterpret_cast<const char*>(&size), 4);
  bytes += "abc";
  Spit(path, bytes);
  auto r = ImageReader::Open(path);
  BOOST_REQUIRE(r.ok());
  PipeEntry e;
  auto more = (*r)->Next(e);
  BOOST_REQUIRE(!more.ok());
  std::string msg(more.status().message());
  BOOST_TEST(msg.find(path) != std::string::npos, msg);
  BOOST_TEST(msg.find("offset 8") != std::string::npos, msg);
  BOOST_TEST(msg.find("expected criu.pipe_entry entry of 100 bytes after its size field") !=
                 std::string::npos,
             msg);

  Spit(path, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  auto unknown = ImageReader::Open(path);
  BOOST_REQUIRE(!unknown.ok());
  BOOST_TEST(std::string(unknown.status().message()).find("unknown image magic 0x04030201") !=
             std::string::npos);

  Spit(path, "\x19\x43");
  auto tiny = ImageReader::Open(path);
  BOOST_REQUIRE(!tiny.ok());
  BOOST_TEST(std::string(tiny.status().message()).find("truncated") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(writer_refuses_entry_without_required_fields) {
  std::string path = TempDir() + "/pipes3.img";
  auto w = TypedImageWriter<PipeEntry>::Create(path, *FindKindByName("PIPES"));
  BOOST_REQUIRE(w.ok());
  PipeEntry e;
  e.set_id(1);
  absl::Status s = w->Write(e);
  BOOST_TEST(!s.ok());
  BOOST_TEST(std::string(s.message()).find("lacks required fields: pipe_id") != std::string::npos,
             s.message());
}

BOOST_AUTO_TEST_CASE(typed_reader_refuses_other_kind) {
  std::string path = TempDir() + "/pipes2.img";
  auto w = ImageWriter::Create(path, *FindKindByName("PIPES"));
  BOOST_REQUIRE(w.ok());
  BOOST_REQUIRE((*w)->Close().ok());
  auto r = TypedImageReader<PipeEntry>::Open(path, *FindKindByName("FIFO_DATA"));
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(std::string(r.status().message()).find("expected a FIFO_DATA image, found PIPES") !=
             std::string::npos);
  auto wrong = TypedImageWriter<PipeEntry>::Create(path, *FindKindByName("PIPES_DATA"));
  BOOST_REQUIRE(!wrong.ok());
}

BOOST_AUTO_TEST_CASE(inventory_has_no_head_magic) {
  const ImageKind* inv = FindKindByName("INVENTORY");
  BOOST_REQUIRE(inv != nullptr);
  BOOST_TEST(MagicBytes(*inv) == std::string("\x16\x31\x31\x58", 4));
  BOOST_TEST(MagicBytes(*FindKindByName("STATS")).substr(0, 4) ==
             std::string("\x40\x59\x10\x55", 4));
  BOOST_TEST(KindForFileName("pipes-data.img")->name == "PIPES_DATA");
  BOOST_TEST(KindForFileName("core-123.img")->name == "CORE");
  BOOST_TEST(KindForFileName("pages-1.img") == nullptr);
  BOOST_TEST(KindForFileName("dump.log") == nullptr);
}

}  // namespace
}  // namespace crpp::images
