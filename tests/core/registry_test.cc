#define BOOST_TEST_MODULE registry
#include "core/registry.h"

#include <boost/test/unit_test.hpp>

#include "core/engine.h"

namespace crpp {
namespace {

struct Memory {
  static constexpr std::string_view kName = "memory";
  static constexpr Stage kStage = Stage::kMemory;
  static constexpr std::string_view kImages[] = {"MM", "PAGEMAP"};
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};

struct Tree {
  static constexpr std::string_view kName = "tree";
  static constexpr Stage kStage = Stage::kTree;
  static constexpr std::string_view kImages[] = {"PSTREE"};
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext&) { return absl::OkStatus(); }
};

struct Files {
  static constexpr std::string_view kName = "files";
  static constexpr Stage kStage = Stage::kFiles;
  static constexpr bool kNoImages = true;
  using Depends = DependsOn<Tree>;
  static absl::Status Dump(DumpContext&) { return absl::OkStatus(); }
  static absl::Status Restore(RestoreContext& r) {
    return absl::NotFoundError("no fd 7 in fdinfo-1.img");
  }
};

// Registered after Memory but of an earlier stage: must run before it.
using Base = Registry<Memory, Tree>;
using Full = Base::With<Files>;

static_assert(Base::size() == 2);
static_assert(Full::size() == 3);
static_assert(Full::StageOrder() == std::array<std::size_t, 3>{1, 2, 0});

BOOST_AUTO_TEST_CASE(dump_runs_plugins_in_stage_order) {
  Engine<Full> engine;
  DumpContext ctx;
  BOOST_REQUIRE(engine.Dump(ctx).ok());
  BOOST_TEST(ctx.ran == (std::vector<std::string>{"tree", "files", "memory"}),
             boost::test_tools::per_element());
}

// The dump driver's fault injection: an error from after_each stops the dump
// right after that plugin, unchanged.
BOOST_AUTO_TEST_CASE(dump_after_each_can_stop_the_dump) {
  Engine<Full> engine;
  DumpContext ctx;
  std::vector<std::string> seen;
  absl::Status s = engine.Dump(ctx, [&seen](std::string_view plugin) {
    seen.emplace_back(plugin);
    return plugin == "files" ? absl::AbortedError("stop here") : absl::OkStatus();
  });
  BOOST_TEST(absl::IsAborted(s));
  BOOST_TEST(std::string(s.message()) == "stop here");
  BOOST_TEST(seen == (std::vector<std::string>{"tree", "files"}), boost::test_tools::per_element());
  BOOST_TEST(ctx.ran == (std::vector<std::string>{"tree", "files"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(restore_stops_at_first_failure_and_names_plugin) {
  Engine<Full> engine;
  RestoreContext ctx;
  absl::Status s = engine.Restore(ctx);
  BOOST_TEST(absl::IsNotFound(s));
  BOOST_TEST(std::string(s.message()) == "files: restore: no fd 7 in fdinfo-1.img");
  // memory (a later stage) never ran.
  BOOST_TEST(ctx.ran == std::vector<std::string>{"tree"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(concept_accepts_complete_plugins) {
  static_assert(Resource<Memory>);
  static_assert(Resource<Files>);
  struct NotAPlugin {};
  static_assert(!Resource<NotAPlugin>);
  BOOST_TEST(Full::names()[2] == "files");
}

}  // namespace
}  // namespace crpp
