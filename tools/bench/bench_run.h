// One run of the benchmark: start bench_target with N MiB of data (or
// bench_tree_target: a tree of processes and threads), dump it with
// crpp::Dump (which kills it), restore it with crpp::Restore, and let it
// verify its memory from the inside. Both targets print "ready SUM" once set
// up and "OK SUM" when the memory checks out after the restore.
#ifndef CRPP_TOOLS_BENCH_BENCH_RUN_H_
#define CRPP_TOOLS_BENCH_BENCH_RUN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/context.h"

namespace crpp::tools {

struct RunSpec {
  std::string target;             // bench_target (or bench_tree_target)
  uint64_t mib = 0;               // how much data it holds
  std::vector<std::string> args;  // the target's arguments; empty: just `mib`
  std::string work_dir;           // images/ and the target's output go here
};

struct RunResult {
  double dump_s = 0;     // around crpp::Dump
  double restore_s = 0;  // around crpp::Restore
  DumpStats stats;
  int64_t image_bytes = 0;  // every image file, logs excluded
  int64_t pages_bytes = 0;  // the pages-N.img files
};

// The images of a run (with dump.log and restore.log): WORK_DIR/images.
std::string ImagesDir(const std::string& work_dir);

// Runs once. The restored target has ended and been reaped when this returns,
// successful or not; the images stay until the next run (or the caller)
// removes them.
absl::StatusOr<RunResult> RunOnce(const RunSpec& spec);

// The tails of the run's logs and of the target's stderr, for a failure.
std::string RunDiagnostics(const std::string& work_dir);

}  // namespace crpp::tools

#endif  // CRPP_TOOLS_BENCH_BENCH_RUN_H_
