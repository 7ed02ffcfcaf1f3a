// bench --profile: where the time of a dump and of a restore goes.
//
// The library reports totals only (DumpStats for the dump; RestoreResult has
// nothing but the total), so the split comes from two other sources:
//   - the timestamps of the engine's own log (-v4), cut at the lines that
//     start each plugin and each phase of the driver;
//   - the kernel operations a dump and a restore are made of, timed here on
//     the same amount of memory: first touch of fresh anonymous memory (4 KiB
//     pages and THP), pread of the pages image, process_vm_readv + write and
//     vmsplice + splice of memory into a new file.
#ifndef CRPP_TOOLS_BENCH_BENCH_PROFILE_H_
#define CRPP_TOOLS_BENCH_BENCH_PROFILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace crpp::tools {

// One step of an engine run, read from its log: what it was and how long.
struct LogStep {
  std::string what;
  double ms = 0;
};

// The steps of a dump (KIND "dump") or restore ("restore") log: a step
// starts at each line that opens a phase (the bench's own "bench: KIND
// begins", each plugin's "KIND: NAME (stage ...)", the restorer, ...) and
// ends where the next one starts; "bench: KIND returned" ends the last.
std::vector<LogStep> StepsFromLog(const std::string& path, const std::string& kind);

// Prints the steps of IMAGES_DIR/dump.log and IMAGES_DIR/restore.log.
void PrintLogSplit(const std::string& images_dir);

// Times the kernel operations a dump and a restore of PAGES_IMAGE are made
// of (see above), on as many bytes as it holds, and prints their GB/s.
// DIR is where the images are, for the write of a new file.
absl::Status PrintKernelCosts(const std::string& pages_image, const std::string& dir);

}  // namespace crpp::tools

#endif  // CRPP_TOOLS_BENCH_BENCH_PROFILE_H_
