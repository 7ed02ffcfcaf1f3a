// bench: how fast crpp dumps and restores memory.
//
//   bazel run //tools:bench [-- --sizes=1,256,1024 --runs=3 --dirs=/dev/shm,/tmp --profile]
//   bazel run //tools:bench -- --tree=100,4,10
//
// For each size and each images directory, RUNS times: bench_target fills
// SIZE MiB of anonymous memory with pseudo-random data; crpp::Dump writes its
// images (and kills it); crpp::Restore brings it back with its pid; the
// target recomputes its checksum from the inside, which must match. --tree
// does the same with a tree of PROCS processes of THREADS threads and MIB MiB
// each (bench_tree_target). Timings
// are taken around the library calls; DumpStats adds the split of the dump.
// Prints the medians as a table. A benchmark, not a test: nothing is cached,
// no page cache is dropped, and images are not fsync'ed.
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/log.h"
#include "tools/bench/bench_profile.h"
#include "tools/bench/bench_run.h"
#include "tools/common/files.h"
#include "tools/common/process.h"

namespace crpp::tools {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kPageSize = 4096;
// Room a run needs besides its data: the target's code, the images' other
// files, the logs.
constexpr uint64_t kSpareMemory = 512 * kMiB;
constexpr uint64_t kSpareDisk = 64 * kMiB;
// --profile times kernel operations only on sizes where they are not noise.
constexpr uint64_t kMinProfileMiB = 64;

struct Options {
  std::vector<uint64_t> sizes_mib = {1, 256, 1024};
  int runs = 3;
  int warmup = 1;
  std::vector<std::string> dirs = {"/dev/shm", "/tmp"};
  bool profile = false;
  uint64_t tree[3] = {0, 0, 0};  // --tree: processes, threads each, MiB each
  bool sizes_given = false;
};

constexpr char kUsage[] =
    "usage: bench [--sizes=MIB,...] [--runs=N] [--warmup=N] [--dirs=DIR,...] [--profile]\n"
    "  Dumps (crpp::Dump, kill mode) and restores (crpp::Restore) a program holding\n"
    "  MIB MiB of pseudo-random data, RUNS times per size and images directory,\n"
    "  checks its memory after each restore, and prints the median timings.\n"
    "  --sizes    sizes in MiB (default 1,256,1024)\n"
    "  --runs     runs per size and directory (default 3)\n"
    "  --warmup   runs before those, not counted (default 1): on a VM, memory\n"
    "             the guest touches for the first time costs extra host faults\n"
    "  --dirs     where the images go (default /dev/shm,/tmp: tmpfs and disk)\n"
    "  --profile  also split dump and restore time (from the engine's log) and\n"
    "             time the kernel operations they are made of\n"
    "  --tree=PROCS,THREADS,MIB  also (only, without --sizes) a tree of PROCS\n"
    "             processes with THREADS threads and MIB MiB of data each\n";

absl::StatusOr<Options> ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (const size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    } else if (arg != "--profile" && arg != "--help" && arg != "-h" && i + 1 < argc) {
      value = argv[++i];
    }
    if (arg == "--profile") {
      o.profile = true;
    } else if (arg == "--help" || arg == "-h") {
      return absl::CancelledError(kUsage);
    } else if (arg == "--runs") {
      if (!absl::SimpleAtoi(value, &o.runs) || o.runs < 1) {
        return absl::InvalidArgumentError("--runs wants a number >= 1");
      }
    } else if (arg == "--warmup") {
      if (!absl::SimpleAtoi(value, &o.warmup) || o.warmup < 0) {
        return absl::InvalidArgumentError("--warmup wants a number >= 0");
      }
    } else if (arg == "--sizes") {
      o.sizes_mib.clear();
      for (absl::string_view s : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        uint64_t mib = 0;
        if (!absl::SimpleAtoi(s, &mib) || mib == 0 || mib > (1 << 20)) {
          return absl::InvalidArgumentError(absl::StrCat("--sizes: bad size '", s, "'"));
        }
        o.sizes_mib.push_back(mib);
      }
      if (o.sizes_mib.empty()) return absl::InvalidArgumentError("--sizes wants a size");
      o.sizes_given = true;
    } else if (arg == "--tree") {
      std::vector<absl::string_view> parts = absl::StrSplit(value, ',');
      bool good = parts.size() == 3;
      for (size_t k = 0; good && k < 3; ++k) {
        good = absl::SimpleAtoi(parts[k], &o.tree[k]) && o.tree[k] > 0 && o.tree[k] <= 4096;
      }
      if (!good)
        return absl::InvalidArgumentError("--tree wants PROCS,THREADS,MIB (e.g. 100,4,10)");
    } else if (arg == "--dirs") {
      o.dirs = absl::StrSplit(value, ',', absl::SkipEmpty());
      if (o.dirs.empty()) return absl::InvalidArgumentError("--dirs wants a directory");
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument ", argv[i], "\n", kUsage));
    }
  }
  return o;
}

// "tmpfs", "ext4", ... for the filesystem DIR is on.
std::string FsName(const std::string& dir) {
  struct statfs fs;
  if (statfs(dir.c_str(), &fs) != 0) return "?";
  switch (static_cast<uint64_t>(fs.f_type)) {
    case 0x01021994:
      return "tmpfs";
    case 0xef53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683e:
      return "btrfs";
    case 0x794c7630:
      return "overlay";
  }
  return absl::StrFormat("fs %#x", static_cast<uint64_t>(fs.f_type));
}

uint64_t MemAvailable() {
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/meminfo"), '\n')) {
    if (absl::ConsumePrefix(&line, "MemAvailable:")) {
      uint64_t kb = 0;
      (void)absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"), &kb);
      return kb * 1024;
    }
  }
  return 0;
}

// Why SIZE MiB cannot be run with images in DIR, or "".
std::string WontFit(uint64_t mib, const std::string& dir) {
  // The target and the image coexist during the dump, the image and the
  // restored task during the restore; on tmpfs the image is memory too.
  const uint64_t need_memory = 2 * mib * kMiB + kSpareMemory;
  if (const uint64_t have = MemAvailable(); have < need_memory) {
    return absl::StrFormat("needs %d MiB of available memory, has %d", need_memory / kMiB,
                           have / kMiB);
  }
  struct statvfs vfs;
  if (statvfs(dir.c_str(), &vfs) != 0) return absl::StrCat("cannot statvfs ", dir);
  const uint64_t need_disk = mib * kMiB + kSpareDisk;
  if (const uint64_t have = uint64_t{vfs.f_bavail} * vfs.f_frsize; have < need_disk) {
    return absl::StrFormat("needs %d MiB free in %s, has %d", need_disk / kMiB, dir, have / kMiB);
  }
  return "";
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The medians of the runs of one size and directory.
struct Row {
  uint64_t mib = 0;
  std::string what;  // "1024 MiB", "100x4x10 MiB" (processes x threads x MiB)
  std::string storage;
  int runs = 0;
  double dump_s = 0, restore_s = 0, frozen_ms = 0, freezing_ms = 0, memdump_ms = 0, memwrite_ms = 0;
  double data_bytes = 0;  // pages written * 4096
  double image_mib = 0;
  bool pages_match = true;  // pages written * 4096 == size of the pages images, every run
  std::string skipped;      // why the row was not run
};

Row Summarize(uint64_t mib, const std::string& what, const std::string& storage,
              const std::vector<RunResult>& runs) {
  Row row{.mib = mib, .what = what, .storage = storage, .runs = static_cast<int>(runs.size())};
  auto median = [&runs](auto field) {
    std::vector<double> v;
    for (const RunResult& r : runs) v.push_back(field(r));
    return Median(v);
  };
  row.dump_s = median([](const RunResult& r) { return r.dump_s; });
  row.restore_s = median([](const RunResult& r) { return r.restore_s; });
  row.frozen_ms = median([](const RunResult& r) { return r.stats.frozen_us / 1e3; });
  row.freezing_ms = median([](const RunResult& r) { return r.stats.freezing_us / 1e3; });
  row.memdump_ms = median([](const RunResult& r) { return r.stats.memdump_us / 1e3; });
  row.memwrite_ms = median([](const RunResult& r) { return r.stats.memwrite_us / 1e3; });
  row.data_bytes = median([](const RunResult& r) { return r.stats.pages_written * 4096.0; });
  row.image_mib = median([](const RunResult& r) { return r.image_bytes / double(kMiB); });
  for (const RunResult& r : runs) {
    row.pages_match &= r.stats.pages_written * kPageSize == static_cast<uint64_t>(r.pages_bytes);
  }
  return row;
}

void PrintTables(const std::vector<Row>& rows) {
  absl::PrintF(
      "\n          size  storage              runs  dump s  frozen ms  restore s  dump GB/s"
      "  restore GB/s  image MiB  pages written\n");
  for (const Row& r : rows) {
    if (!r.skipped.empty()) {
      absl::PrintF("%14s  %-19s  skipped: %s\n", r.what, r.storage, r.skipped);
      continue;
    }
    absl::PrintF("%14s  %-19s %5d %7.3f %10.1f %10.3f %10.2f %13.2f %10.1f  %s\n", r.what,
                 r.storage, r.runs, r.dump_s, r.frozen_ms, r.restore_s,
                 r.data_bytes / r.dump_s / 1e9, r.data_bytes / r.restore_s / 1e9, r.image_mib,
                 absl::StrFormat("%d = pages images/4096 %s",
                                 static_cast<uint64_t>(r.data_bytes / kPageSize),
                                 r.pages_match ? "ok" : "MISMATCH"));
  }
  absl::PrintF(
      "\n  dump split (DumpStats, median ms): frozen = memdump + memwrite + the rest of it\n"
      "          size  storage             freezing   frozen   memdump  memwrite  rest frozen  "
      "outside frozen\n");
  for (const Row& r : rows) {
    if (!r.skipped.empty()) continue;
    absl::PrintF("%14s  %-19s %8.1f %8.1f %9.1f %9.1f %12.1f %15.1f\n", r.what, r.storage,
                 r.freezing_ms, r.frozen_ms, r.memdump_ms, r.memwrite_ms,
                 r.frozen_ms - r.memdump_ms - r.memwrite_ms,
                 r.dump_s * 1e3 - r.frozen_ms - r.freezing_ms);
  }
}

int Main(int argc, char** argv) {
  absl::StatusOr<Options> options = ParseOptions(argc, argv);
  if (!options.ok()) {
    const bool help = absl::IsCancelled(options.status());
    fprintf(help ? stdout : stderr, "%s%s",
            help ? "" : "bench: ", std::string(options.status().message()).c_str());
    return help ? 0 : 2;
  }
  KillGuardedOnSignals();
  // The processes of a dumped tree come to us when its root goes: we reap
  // them (see RunOnce).
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it happens, also in a pipe
  absl::StatusOr<std::string> target = FindRunfile("tools/bench/bench_target");
  absl::StatusOr<std::string> tree_target = FindRunfile("tools/bench/bench_tree_target");
  for (const auto* t : {&target, &tree_target}) {
    if (!t->ok()) {
      fprintf(stderr, "bench: %s\n", std::string(t->status().message()).c_str());
      return 1;
    }
  }
  std::vector<TempDir> work;
  std::vector<std::string> storage;
  for (const std::string& dir : options->dirs) {
    absl::StatusOr<TempDir> t = TempDir::Create(dir, "crpp-bench");
    if (!t.ok()) {
      fprintf(stderr, "bench: %s\n", std::string(t.status().message()).c_str());
      return 1;
    }
    work.push_back(*std::move(t));
    storage.push_back(absl::StrCat(FsName(dir), " ", dir));
  }

  // What to run: each size, and the tree.
  struct Workload {
    std::string what;
    uint64_t mib;  // all of its data
    std::string target;
    std::vector<std::string> args;
  };
  std::vector<Workload> workloads;
  if (options->sizes_given || options->tree[0] == 0) {
    for (uint64_t mib : options->sizes_mib) {
      workloads.push_back({absl::StrCat(mib, " MiB"), mib, *target, {}});
    }
  }
  if (const uint64_t* t = options->tree; t[0] != 0) {
    workloads.push_back({absl::StrFormat("%dx%dx%d MiB", t[0], t[1], t[2]),
                         t[0] * t[2],
                         *tree_target,
                         {absl::StrCat(t[0]), absl::StrCat(t[1]), absl::StrCat(t[2])}});
  }

  const auto started = std::chrono::steady_clock::now();
  absl::PrintF(
      "crpp bench: dump (kill) + restore + verify; %d warm-up and %d counted run(s) per row\n",
      options->warmup, options->runs);
  if (options->tree[0] != 0) {
    absl::PrintF("  tree: processes x threads x MiB each; every process checks its memory\n");
  }
  std::vector<Row> rows;
  for (const Workload& w : workloads) {
    const uint64_t mib = w.mib;
    for (size_t d = 0; d < work.size(); ++d) {
      if (std::string why = WontFit(mib, options->dirs[d]); !why.empty()) {
        absl::PrintF("  %12s  %-19s skipped: %s\n", w.what, storage[d], why);
        rows.push_back({.mib = mib, .what = w.what, .storage = storage[d], .skipped = why});
        continue;
      }
      std::vector<RunResult> results;
      RunSpec spec{.target = w.target, .mib = mib, .args = w.args, .work_dir = work[d].path()};
      for (int run = 1 - options->warmup; run <= options->runs; ++run) {
        const std::string label =
            run < 1 ? "warm-up" : absl::StrFormat("run %d/%d", run, options->runs);
        absl::StatusOr<RunResult> r = RunOnce(spec);
        if (!r.ok()) {
          log::ToStderr();
          fprintf(stderr, "\nbench: FAILED: %s on %s, %s: %s\n%s", w.what.c_str(),
                  storage[d].c_str(), label.c_str(), std::string(r.status().message()).c_str(),
                  RunDiagnostics(spec.work_dir).c_str());
          return 1;
        }
        absl::PrintF(
            "  %12s  %-19s %-8s dump %.3f s (frozen %.1f ms), restore %.3f s, "
            "memory verified\n",
            w.what, storage[d], label + ":", r->dump_s, r->stats.frozen_us / 1e3, r->restore_s);
        if (run >= 1) results.push_back(*r);
      }
      if (options->profile) {
        absl::PrintF("  profile of the last run:\n");
        PrintLogSplit(ImagesDir(spec.work_dir));
        if (mib >= kMinProfileMiB && w.args.empty()) {
          absl::Status s =
              PrintKernelCosts(ImagesDir(spec.work_dir) + "/pages-1.img", spec.work_dir);
          if (!s.ok()) absl::PrintF("    (kernel operations not timed: %s)\n", s.message());
        }
      }
      std::error_code ec;
      std::filesystem::remove_all(ImagesDir(spec.work_dir), ec);
      rows.push_back(Summarize(mib, w.what, storage[d], results));
    }
  }
  PrintTables(rows);
  absl::PrintF(
      "\n  GB/s: pages written x 4096 bytes / time around the library call, in 10^9 bytes/s.\n"
      "  memdump/memwrite: as the engine counts them (getting the pages / writing them out;\n"
      "  a dump that splices pages straight into the image counts it all as memdump).\n"
      "  Images are not fsync'ed: on a disk filesystem they stay in the page cache, and the\n"
      "  restore reads them back from it, so disk rows measure the filesystem, not the device.\n"
      "  Total time: %.1f s\n",
      SecondsSince(started));
  return 0;
}

}  // namespace
}  // namespace crpp::tools

int main(int argc, char** argv) { return crpp::tools::Main(argc, argv); }
