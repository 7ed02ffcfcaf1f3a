#define BOOST_TEST_MODULE kerndat
#include <dirent.h>
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "core/kerndat/probe.h"

namespace kd = crpp::kerndat;

namespace {

constexpr std::string_view kMaybe =
    "Looks good but some kernel features are missing\n"
    "which, depending on your process tree, may cause\n"
    "dump or restore failure.\n";

kd::Result Run(std::string_view name) {
  const kd::Feature* f = kd::FindFeature(name);
  BOOST_REQUIRE_MESSAGE(f != nullptr, "no feature " << name);
  kd::Result r = kd::Probe(*f);
  BOOST_TEST_MESSAGE(kd::FormatLine(*f, r));
  return r;
}

// Probes that work on the machines this project runs on (see
// shared/notes/kernel.md); a failure prints the probe's reason.
void ExpectPresent(std::string_view name) {
  kd::Result r = Run(name);
  BOOST_TEST(r.ok, name << ": " << r.detail);
}

// No child of ours, running or zombie, is left.
bool NoChildren() {
  int status = 0;
  return waitpid(-1, &status, WNOHANG | __WALL) == -1 && errno == ECHILD;
}

// Open descriptors of this process.
int OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

size_t Count(const std::string& text, char c) {
  size_t n = 0;
  for (char x : text) n += x == c;
  return n;
}

}  // namespace

BOOST_AUTO_TEST_CASE(features_have_unique_names_and_descriptions) {
  std::set<std::string_view> names;
  BOOST_TEST(kd::AllFeatures().size() > 40u);
  int last_category = 0;
  for (const kd::Feature& f : kd::AllFeatures()) {
    BOOST_TEST(!f.name.empty());
    BOOST_TEST(names.insert(f.name).second, "duplicate feature name " << f.name);
    BOOST_TEST(!f.description.empty(), f.name << " has no description");
    BOOST_TEST(f.probe != nullptr);
    BOOST_TEST(f.name.find(' ') == std::string_view::npos);
    BOOST_TEST(f.name != "list");  // reserved by `check --feature list`
    for (char c : f.name) BOOST_TEST(!(c >= 'A' && c <= 'Z'), f.name << " is not lowercase");
    // Exactly one category, and the table is ordered basic, extra, experimental.
    BOOST_TEST(int{f.basic()} + int{f.extra()} + int{f.experimental()} == 1);
    int category = static_cast<int>(f.category);
    BOOST_TEST(category >= last_category, f.name << " is out of category order");
    last_category = category;
  }
}

BOOST_AUTO_TEST_CASE(find_feature) {
  for (const kd::Feature& f : kd::AllFeatures()) BOOST_TEST(kd::FindFeature(f.name) == &f);
  BOOST_TEST(kd::FindFeature("no_such_feature") == nullptr);
  BOOST_TEST(kd::FindFeature("") == nullptr);
  BOOST_TEST(kd::FindFeature("list") == nullptr);
  // criu's --feature names that scripts use.
  for (std::string_view name : {"mem_dirty_track", "uffd", "uffd-noncoop", "userns", "timens",
                                "clone3_set_tid", "pidfd_store", "cgroupns", "tun", "mnt_id",
                                "seccomp_filters", "get_rseq_conf", "openat2", "can_map_vdso"}) {
    BOOST_TEST(kd::FindFeature(name) != nullptr, "criu's feature " << name << " is missing");
  }
  // Categories that matter: soft-dirty is not needed at all.
  BOOST_TEST(kd::FindFeature("mem_dirty_track")->extra());
  BOOST_TEST(kd::FindFeature("ptrace_seize")->basic());
  BOOST_TEST(kd::FindFeature("compat_cr")->experimental());
}

BOOST_AUTO_TEST_CASE(format_line) {
  const kd::Feature& f = *kd::FindFeature("kcmp");
  BOOST_TEST(kd::FormatLine(f, {true, ""}) == "✓ kcmp: " + std::string(f.description));
  BOOST_TEST(kd::FormatLine(f, {true, "x"}) == "✓ kcmp: " + std::string(f.description) + " (x)");
  BOOST_TEST(kd::FormatLine(f, {false, "why"}) ==
             "✗ kcmp: " + std::string(f.description) + ": why");
}

BOOST_AUTO_TEST_CASE(process_probes) {
  ExpectPresent("ptrace_seize");
  ExpectPresent("ptrace_peeksiginfo");
  ExpectPresent("clone3_set_tid");
  ExpectPresent("pidfd_store");
  ExpectPresent("sigqueueinfo");
  BOOST_TEST(NoChildren());
}

BOOST_AUTO_TEST_CASE(memory_probes) {
  ExpectPresent("memfd");
  ExpectPresent("pagemap");
  ExpectPresent("pagemap_scan");
  ExpectPresent("uffd");
  ExpectPresent("uffd_wp_async");
  ExpectPresent("vdso");
  ExpectPresent("vdso_mremap");
  BOOST_TEST(NoChildren());
}

BOOST_AUTO_TEST_CASE(misc_probes) {
  ExpectPresent("kcmp");
  ExpectPresent("kcmp_epoll");
  ExpectPresent("tcp_repair");
  ExpectPresent("sock_diag");
  ExpectPresent("fdinfo_ext");
}

BOOST_AUTO_TEST_CASE(namespace_probes) {
  ExpectPresent("userns");
  ExpectPresent("pidns");
  ExpectPresent("netns");
  BOOST_TEST(NoChildren());
}

BOOST_AUTO_TEST_CASE(vdso_layout_names_the_blocks) {
  kd::Result r = Run("vdso");
  BOOST_REQUIRE(r.ok);
  BOOST_TEST(r.detail.find("[vdso] ") != std::string::npos, r.detail);
}

BOOST_AUTO_TEST_CASE(xsave_size) {
  kd::Result r = Run("xsave_size");
  BOOST_REQUIRE_MESSAGE(r.ok, r.detail);
  // "N bytes (...)": at least the legacy area and the XSAVE header; every
  // state component size is a multiple of 8 bytes.
  unsigned long size = std::strtoul(r.detail.c_str(), nullptr, 10);
  BOOST_TEST(size >= 512u + 64u, r.detail);
  BOOST_TEST(size % 8 == 0u, r.detail);
  BOOST_TEST(r.detail.find(" bytes") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(soft_dirty_is_absent_with_a_reason) {
  kd::Result r = Run("mem_dirty_track");
  BOOST_TEST(!r.ok);
  BOOST_TEST(r.detail.find("CONFIG_MEM_SOFT_DIRTY") != std::string::npos, r.detail);
  BOOST_TEST(NoChildren());
}

BOOST_AUTO_TEST_CASE(feature_check_of_a_present_feature) {
  kd::CheckReport r = kd::RunFeatureCheck("kcmp");
  BOOST_TEST(r.exit_code == 0, r.text);
  BOOST_TEST(r.text.find("✓ kcmp: ") == 0u, r.text);
  BOOST_TEST(r.text.find("\nkcmp is supported\n") != std::string::npos, r.text);
}

BOOST_AUTO_TEST_CASE(feature_check_of_an_absent_feature) {
  kd::CheckReport r = kd::RunFeatureCheck("mem_dirty_track");
  BOOST_TEST(r.exit_code == 1, r.text);
  BOOST_TEST(r.text.find("✗ mem_dirty_track: ") == 0u, r.text);
  BOOST_TEST(r.text.find("is supported") == std::string::npos, r.text);
}

BOOST_AUTO_TEST_CASE(feature_check_of_an_unknown_name) {
  kd::CheckReport r = kd::RunFeatureCheck("no_such_feature");
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.text.find("Unknown feature no_such_feature\n") == 0u, r.text);
  BOOST_TEST(r.text.find("userns") != std::string::npos, r.text);
}

BOOST_AUTO_TEST_CASE(feature_list) {
  kd::CheckReport r = kd::RunFeatureCheck("list");
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(Count(r.text, '\n') == 1u);
  std::string padded = " " + r.text.substr(0, r.text.size() - 1) + " ";
  for (const kd::Feature& f : kd::AllFeatures()) {
    BOOST_TEST(padded.find(" " + std::string(f.name) + " ") != std::string::npos, f.name);
  }
}

BOOST_AUTO_TEST_CASE(basic_check_judges_only_basic_features) {
  size_t basic = 0;
  for (const kd::Feature& f : kd::AllFeatures()) basic += f.basic();
  kd::CheckReport r = kd::RunCheck(false, false, false);
  BOOST_TEST_MESSAGE(r.text);
  // One line per basic feature, a header and five optional ones, the verdict.
  BOOST_TEST(Count(r.text, '\n') == basic + 1 + 5 + 1);
  const bool good =
      r.text.size() >= 12 && r.text.compare(r.text.size() - 12, 12, "Looks good.\n") == 0;
  BOOST_TEST(good == (r.exit_code == 0));
  // Soft-dirty is shown (missing on these machines) but does not spoil the verdict.
  BOOST_TEST(r.text.find("mem_dirty_track") != std::string::npos);
  BOOST_TEST(r.exit_code == 0);
  BOOST_TEST(NoChildren());
}

BOOST_AUTO_TEST_CASE(full_check_leaves_no_child_behind) {
  BOOST_REQUIRE(NoChildren());
  const int fds = OpenFds();
  kd::CheckReport r = kd::RunCheck(true, false, false);
  BOOST_TEST_MESSAGE(r.text);
  BOOST_TEST(NoChildren(), "a probe left a child process behind");
  BOOST_TEST(OpenFds() == fds, "a probe left a descriptor open");
  // One line per feature, then the verdict.
  const size_t verdict_lines =
      r.exit_code == 0 ? 1 : (r.text.find(kMaybe) != std::string::npos ? 3 : 1);
  BOOST_TEST(Count(r.text, '\n') == kd::AllFeatures().size() + verdict_lines, r.text);
  // Soft-dirty is missing here but not basic: "looks good but...", exit 1.
  BOOST_TEST(r.exit_code == 1);
  BOOST_TEST(r.text.find("✗ mem_dirty_track: ") != std::string::npos);
  bool basic_missing = false;
  for (const kd::Feature& f : kd::AllFeatures()) {
    if (f.basic() && r.text.find("✗ " + std::string(f.name) + ": ") != std::string::npos) {
      basic_missing = true;
    }
  }
  const std::string_view verdict = basic_missing ? "Does not look good.\n" : kMaybe;
  BOOST_TEST(r.text.size() >= verdict.size());
  BOOST_TEST(r.text.compare(r.text.size() - verdict.size(), verdict.size(), verdict) == 0, r.text);
}
