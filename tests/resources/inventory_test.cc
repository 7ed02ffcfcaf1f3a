#define BOOST_TEST_MODULE inventory
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>

#include "core/engine.h"
#include "core/images/image_io.h"
#include "inventory.pb.h"
#include "resources/inventory/inventory.h"
#include "tests/testing/files.h"

namespace crpp {
namespace {

using testing::FreshDir;
using testing::Slurp;
using testing::Spit;
using testing::TempDir;

BOOST_AUTO_TEST_CASE(dump_writes_an_inventory_that_restore_accepts) {
  std::string dir = FreshDir("inv-ok");
  Engine<Registry<resources::Inventory>> engine;
  DumpContext d{.root_pid = getpid(), .images_dir = dir};
  BOOST_REQUIRE(engine.Dump(d).ok());
  auto inv = images::ReadAll<criu::inventory_entry>(dir + "/inventory.img", images::Inventory());
  BOOST_REQUIRE(inv.ok());
  BOOST_REQUIRE(inv->size() == 1u);
  BOOST_TEST((*inv)[0].img_version() == 2u);
  BOOST_TEST((*inv)[0].fdinfo_per_id());
  RestoreContext r{.images_dir = dir};
  BOOST_TEST(engine.Restore(r).ok());
  BOOST_TEST(r.ran == std::vector<std::string>{"inventory"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(restore_refuses_other_versions_and_missing_images) {
  std::string dir = FreshDir("inv-bad");
  criu::inventory_entry inv;
  inv.set_img_version(1);
  inv.set_fdinfo_per_id(true);
  auto w = images::TypedImageWriter<criu::inventory_entry>::Create(dir + "/inventory.img",
                                                                   images::Inventory());
  BOOST_REQUIRE(w.ok());
  BOOST_REQUIRE(w->Write(inv).ok());
  BOOST_REQUIRE(w->Close().ok());
  Engine<Registry<resources::Inventory>> engine;
  RestoreContext r{.images_dir = dir};
  absl::Status s = engine.Restore(r);
  BOOST_TEST(!s.ok());
  BOOST_TEST(std::string(s.message())
                     .find("inventory: restore: " + dir +
                           "/inventory.img: image version 1 is not supported") == 0,
             s.message());

  RestoreContext empty{.images_dir = FreshDir("inv-none")};
  s = engine.Restore(empty);
  BOOST_TEST(absl::IsNotFound(s), s.message());
}

// A plugin from outside the project joins a set with With<>.
struct Extra {
  static constexpr std::string_view kName = "extra";
  static constexpr Stage kStage = Stage::kTask;
  static constexpr bool kNoImages = true;
  using Depends = DependsOn<resources::Inventory>;
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};

BOOST_AUTO_TEST_CASE(library_users_extend_the_default_set) {
  Engine<Registry<resources::Inventory>::With<Extra>> engine;
  DumpContext d{.root_pid = getpid(), .images_dir = FreshDir("inv-extra")};
  BOOST_REQUIRE(engine.Dump(d).ok());
  BOOST_TEST(d.ran == (std::vector<std::string>{"inventory", "extra"}),
             boost::test_tools::per_element());
}

}  // namespace
}  // namespace crpp
