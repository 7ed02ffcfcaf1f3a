// Every image message: written to an image and read back byte-identical;
// converted to crit JSON (plain and pretty) and back byte-identical; and every
// fixture image decoded and re-encoded by crit's codec to identical bytes.
#define BOOST_TEST_MODULE image_roundtrip
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <random>
#include <set>

#include "core/images/crit_codec.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/images/pb_json.h"
#include "google/protobuf/descriptor.h"
#include "tests/images/fixtures.h"
#include "tests/images/random_message.h"
#include "tests/testing/files.h"

namespace crpp::images {
namespace {

using testing::FreshDir;
using testing::Slurp;
using testing::Spit;
using testing::TempDir;

// Every message type the image table names, plus the ones nested in them.
std::vector<std::string> AllMessageTypes() {
  std::set<std::string> names;
  std::vector<const google::protobuf::Descriptor*> todo;
  for (const ImageKind& k : AllKinds()) {
    for (std::string_view t : {k.entry_type, k.head_type}) {
      if (t.empty()) continue;
      auto m = NewEntry(t);
      BOOST_REQUIRE_MESSAGE(m.ok(), "table names an unknown message: " << t);
      todo.push_back((*m)->GetDescriptor());
    }
  }
  todo.push_back((*NewEntry("ghost_chunk_entry"))->GetDescriptor());
  todo.push_back((*NewEntry("ipc_msg"))->GetDescriptor());
  while (!todo.empty()) {
    const auto* d = todo.back();
    todo.pop_back();
    if (!names.insert(d->name()).second) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->message_type() != nullptr) todo.push_back(d->field(i)->message_type());
    }
  }
  return {names.begin(), names.end()};
}

BOOST_AUTO_TEST_CASE(every_message_survives_image_and_json_round_trips) {
  std::mt19937_64 rng(20261123);
  std::vector<std::string> types = AllMessageTypes();
  BOOST_TEST(types.size() > 100u);
  const ImageKind& any = *FindKindByName("CORE");  // framing does not depend on the kind
  for (const std::string& type : types) {
    for (int round = 0; round < 20; ++round) {
      auto msg = NewEntry(type);
      BOOST_REQUIRE(msg.ok());
      testing::FillRandom(**msg, rng);
      std::string want = (*msg)->SerializeAsString();

      std::string path = TempDir() + "/rt.img";
      auto w = ImageWriter::Create(path, any);
      BOOST_REQUIRE(w.ok());
      BOOST_REQUIRE((*w)->Write(**msg).ok());
      BOOST_REQUIRE((*w)->Close().ok());
      auto r = ImageReader::Open(path);
      BOOST_REQUIRE(r.ok());
      auto back = NewEntry(type);
      auto more = (*r)->Next(**back);
      BOOST_REQUIRE_MESSAGE(more.ok() && *more, type << ": " << more.status().message());
      BOOST_REQUIRE_MESSAGE((*back)->SerializeAsString() == want, type << ": image round trip");

      for (bool pretty : {false, true}) {
        Json j = MessageToJson(**msg, pretty);
        auto parsed = Json::Parse(j.Dump(pretty ? 4 : -1));
        BOOST_REQUIRE(parsed.ok());
        auto again = NewEntry(type);
        absl::Status s = JsonToMessage(*parsed, **again);
        BOOST_REQUIRE_MESSAGE(s.ok(), type << " pretty=" << pretty << ": " << s.message());
        BOOST_REQUIRE_MESSAGE((*again)->SerializeAsString() == want,
                              type << " pretty=" << pretty << ": JSON round trip differs:\n"
                                   << j.Dump(4));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(fixture_images_decode_and_encode_to_identical_bytes) {
  std::string dir = TempDir() + "/fixtures";
  mkdir(dir.c_str(), 0700);
  BOOST_REQUIRE(testing::WriteFixtureDump(dir).ok());
  for (const std::string& name : testing::FixtureImageNames()) {
    std::string path = dir + "/" + name;
    for (bool pretty : {false, true}) {
      auto r = ImageReader::Open(path);
      BOOST_REQUIRE_MESSAGE(r.ok(), name << ": " << r.status().message());
      auto doc = DecodeImage(**r, {.pretty = pretty});
      BOOST_REQUIRE_MESSAGE(doc.ok(), name << ": " << doc.status().message());
      auto parsed = Json::Parse(doc->Dump(pretty ? 4 : -1));
      BOOST_REQUIRE(parsed.ok());
      std::string out = TempDir() + "/re-" + name;
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      BOOST_REQUIRE(fd >= 0);
      absl::Status s = EncodeImage(*parsed, fd, out);
      close(fd);
      BOOST_REQUIRE_MESSAGE(s.ok(), name << ": " << s.message());
      BOOST_TEST(Slurp(out) == Slurp(path), name << " pretty=" << pretty);
    }
  }
}

}  // namespace
}  // namespace crpp::images
