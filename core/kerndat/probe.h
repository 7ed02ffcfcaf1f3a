// Kernel-feature probing: what `crpp check` reports.
//
// Every feature is a small probe that exercises the kernel interface it is
// named after (a syscall, an ioctl, a /proc file, a socket option...) and says
// whether it worked. Probes never crash and never leave anything behind: the
// children they fork are reaped by pid, the files and mappings they make are
// removed, and a failure comes back as ok=false with the reason (usually the
// errno text).
//
// Categories follow `criu check`:
//   kBasic         checked by plain `check`; a failure means dump/restore cannot
//                  work at all, so `check` fails ("Does not look good.").
//   kExtra         checked with --extra or --all; needed only for some process
//                  trees (TUN devices, lazy pages, time namespaces, ...).
//   kExperimental  checked with --experimental or --all.
// Missing extra/experimental features make `check` print criu's "Looks good
// but some kernel features are missing..." text and exit non-zero, as criu does.
//
// Feature names are criu's `--feature` names where criu has one (userns,
// mem_dirty_track, uffd, uffd-noncoop, timens, clone3_set_tid, ...) and our
// own lowercase names otherwise (ptrace_seize, pagemap_scan, xsave_size, ...).
#ifndef CRPP_CORE_KERNDAT_PROBE_H_
#define CRPP_CORE_KERNDAT_PROBE_H_

#include <string>
#include <string_view>

#include "absl/types/span.h"

namespace crpp::kerndat {

// What a probe found. When ok, `detail` is the value found (e.g. "11008 bytes")
// and may be empty; when not ok it is the reason.
struct Result {
  bool ok = false;
  std::string detail;
};

enum class Category { kBasic, kExtra, kExperimental };

struct Feature {
  std::string_view name;         // unique; what `check --feature NAME` takes
  std::string_view description;  // one human line, e.g. "ptrace(PTRACE_SEIZE) of a child"
  Category category;
  Result (*probe)();

  // Needed by the engine at all: failure makes `check` fail.
  constexpr bool basic() const { return category == Category::kBasic; }
  // Only checked with --extra or --all.
  constexpr bool extra() const { return category == Category::kExtra; }
  // Only checked with --experimental or --all.
  constexpr bool experimental() const { return category == Category::kExperimental; }
};

// Every feature, basic ones first, then extra, then experimental.
absl::Span<const Feature> AllFeatures();

// The feature called `name`, or nullptr.
const Feature* FindFeature(std::string_view name);

// Runs the probe of `feature` (a convenience for feature.probe()).
Result Probe(const Feature& feature);

// One report line: "✓ name: description (detail)" or "✗ name: description: reason".
std::string FormatLine(const Feature& feature, const Result& result);

// What a `check` command prints on stdout, and its exit code.
struct CheckReport {
  std::string text;
  int exit_code = 0;
};

// `check [--all] [--extra] [--experimental]`: one line per probed feature, then
//   "Looks good."                      every probed feature is there (exit 0);
//   "Does not look good."              a basic feature is missing (exit 1);
//   "Looks good but some kernel features are missing\n"
//   "which, depending on your process tree, may cause\n"
//   "dump or restore failure."         only extra/experimental ones are missing
//                                      (exit 1, as criu).
// Unlike criu, which stops at the first missing basic feature, every selected
// feature is probed so that the whole picture is printed at once.
CheckReport RunCheck(bool all, bool extra, bool experimental);

// `check --feature NAME`: the feature's line, then "NAME is supported" (exit 0)
// or nothing more (exit 1). "list" prints the known names on one line,
// separated by spaces (exit 0). An unknown name prints "Unknown feature NAME"
// and the known names (exit 1).
CheckReport RunFeatureCheck(std::string_view name);

}  // namespace crpp::kerndat

#endif  // CRPP_CORE_KERNDAT_PROBE_H_
