#include "tools/bench/bench_profile.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tools/common/files.h"
#include "tools/common/process.h"

namespace crpp::tools {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kPage = 4096;
constexpr size_t kHugePage = 2 << 20;
constexpr size_t kMaxIo = 1 << 30;  // bytes per read/write call
constexpr int kRepeats = 2;
constexpr int kMaxPipe = 1 << 20;  // /proc/sys/fs/pipe-max-size

// "(01.234567) message" -> seconds and message.
std::optional<std::pair<double, absl::string_view>> ParseLogLine(absl::string_view line) {
  if (!absl::ConsumePrefix(&line, "(")) return std::nullopt;
  const size_t close = line.find(") ");
  double seconds = 0;
  if (close == absl::string_view::npos || !absl::SimpleAtod(line.substr(0, close), &seconds)) {
    return std::nullopt;
  }
  return std::make_pair(seconds, line.substr(close + 2));
}

// The name of the step that MESSAGE opens, or "" when it opens none.
std::string StepName(absl::string_view message, const std::string& kind) {
  if (message == absl::StrCat("bench: ", kind, " begins")) {
    return kind == "dump" ? "precheck, seize (freeze)" : "pstree, clone3, setup in the child";
  }
  if (message == absl::StrCat("bench: ", kind, " returned")) return "end";
  if (!absl::ConsumePrefix(&message, kind + ": ")) return "";
  if (const size_t stage = message.find(" (stage "); stage != absl::string_view::npos) {
    return absl::StrCat("plugin ", message.substr(0, stage));
  }
  if (absl::StrContains(message, " frozen in ")) return "re-read /proc, precheck";
  if (absl::StrContains(message, " done (")) return "return";
  if (absl::StrContains(message, "jumping into the restorer")) {
    return "restorer (unmap, mremap, sigreturn) under ptrace";
  }
  if (absl::StrContains(message, " runs (")) return "return";
  return "";
}

void* MapAnon(size_t bytes, int extra_flags) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags,
                 -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// BYTES of fresh anonymous memory at a 2 MiB boundary (for THP).
void* MapAligned(size_t bytes) {
  auto* raw = static_cast<char*>(MapAnon(bytes + kHugePage, 0));
  if (raw == nullptr) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(raw);
  char* aligned = reinterpret_cast<char*>((base + kHugePage - 1) & ~(kHugePage - 1));
  if (aligned > raw) munmap(raw, static_cast<size_t>(aligned - raw));
  const size_t tail = static_cast<size_t>(raw + bytes + kHugePage - (aligned + bytes));
  if (tail > 0) munmap(aligned + bytes, tail);
  return aligned;
}

void Touch(void* p, size_t bytes) {
  auto* c = static_cast<volatile char*>(p);
  for (size_t off = 0; off < bytes; off += kPage) c[off] = 1;
}

absl::Status ReadInto(int fd, void* dst, size_t bytes) {
  for (size_t done = 0; done < bytes;) {
    const ssize_t n = pread(fd, static_cast<char*>(dst) + done, std::min(kMaxIo, bytes - done),
                            static_cast<off_t>(done));
    if (n <= 0) return absl::DataLossError(absl::StrCat("pread: ", strerror(errno)));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Memory for one timed operation, and the operation on it, which may map
// memory itself; whatever MEM holds afterwards is unmapped.
using Setup = std::function<absl::StatusOr<void*>()>;
using Op = std::function<absl::Status(void*& mem)>;

// The best of kRepeats timings of OP: the first of a kind can pay for
// things the others do not (compacting memory for huge pages, say).
absl::StatusOr<double> BestOf(size_t bytes, const Setup& setup, const Op& op) {
  double best = 0;
  for (int i = 0; i < kRepeats; ++i) {
    absl::StatusOr<void*> mem = setup();
    if (!mem.ok()) return mem.status();
    const Clock::time_point t0 = Clock::now();
    absl::Status s = op(*mem);
    const double seconds = SecondsSince(t0);
    if (*mem != nullptr) munmap(*mem, bytes);
    if (!s.ok()) return s;
    if (i == 0 || seconds < best) best = seconds;
  }
  return best;
}

absl::StatusOr<void*> Mapped(void* p) {
  if (p == nullptr) return absl::ResourceExhaustedError(absl::StrCat("mmap: ", strerror(errno)));
  return p;
}

}  // namespace

std::vector<LogStep> StepsFromLog(const std::string& path, const std::string& kind) {
  std::vector<LogStep> steps;
  double started = 0;
  for (absl::string_view line : absl::StrSplit(ReadFile(path), '\n')) {
    const auto parsed = ParseLogLine(line);
    if (!parsed) continue;
    const std::string name = StepName(parsed->second, kind);
    if (name.empty()) continue;
    if (!steps.empty()) steps.back().ms = (parsed->first - started) * 1e3;
    if (name == "end") break;
    steps.push_back({name, 0});
    started = parsed->first;
  }
  return steps;
}

void PrintLogSplit(const std::string& images_dir) {
  for (const char* kind : {"dump", "restore"}) {
    const std::vector<LogStep> steps =
        StepsFromLog(absl::StrCat(images_dir, "/", kind, ".log"), kind);
    double total = 0;
    for (const LogStep& s : steps) total += s.ms;
    absl::PrintF("    %s, from the timestamps of %s.log (%.1f ms in all):\n", kind, kind, total);
    for (const LogStep& s : steps) {
      absl::PrintF("      %-50s %9.1f ms %5.1f%%\n", s.what, s.ms,
                   total > 0 ? 100 * s.ms / total : 0);
    }
  }
}

absl::Status PrintKernelCosts(const std::string& pages_image, const std::string& dir) {
  const int64_t size = FileSize(pages_image);
  if (size <= 0) return absl::NotFoundError(absl::StrCat(pages_image, ": no pages image"));
  const size_t bytes = static_cast<size_t>(size);
  const int fd = open(pages_image.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(pages_image, ": ", strerror(errno)));
  const std::string file = dir + "/bench-write-test";
  absl::StatusOr<void*> src = Mapped(MapAnon(bytes, 0));  // what process_vm_readv reads
  if (!src.ok()) {
    close(fd);
    return src.status();
  }
  Touch(*src, bytes);

  const Setup none = [] { return nullptr; };
  const Setup fresh = [&] { return Mapped(MapAnon(bytes, 0)); };
  const Setup touched = [&]() -> absl::StatusOr<void*> {
    absl::StatusOr<void*> p = Mapped(MapAnon(bytes, 0));
    if (p.ok()) Touch(*p, bytes);
    return p;
  };
  const Setup huge = [&]() -> absl::StatusOr<void*> {
    absl::StatusOr<void*> p = Mapped(MapAligned(bytes));
    if (p.ok()) madvise(*p, bytes, MADV_HUGEPAGE);
    return p;
  };
  const Op touch = [&](void*& p) {
    Touch(p, bytes);
    return absl::OkStatus();
  };
  const Op populate = [&](void*& p) {
    absl::StatusOr<void*> m = Mapped(MapAnon(bytes, MAP_POPULATE));
    p = m.ok() ? *m : nullptr;
    return m.status();
  };
  const Op read_image = [&](void*& p) { return ReadInto(fd, p, bytes); };
  const Op vm_readv = [&](void*& p) {
    for (size_t done = 0; done < bytes;) {
      const size_t len = std::min(kMaxIo, bytes - done);
      iovec local{static_cast<char*>(p) + done, len};
      iovec remote{static_cast<char*>(*src) + done, len};
      const ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
      if (n <= 0) return absl::InternalError(absl::StrCat("process_vm_readv: ", strerror(errno)));
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  };
  // Writes all of *src to a new file with WRITE_SOME(fd, offset) -> bytes.
  auto to_new_file = [&](auto&& write_some) {
    const int out = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return absl::InternalError(absl::StrCat(file, ": ", strerror(errno)));
    absl::Status s;
    for (size_t done = 0; done < bytes && s.ok();) {
      const ssize_t n = write_some(out, done);
      if (n <= 0) s = absl::InternalError(absl::StrCat("writing ", file, ": ", strerror(errno)));
      done += n > 0 ? static_cast<size_t>(n) : 0;
    }
    close(out);
    unlink(file.c_str());
    return s;
  };
  const Op write_file = [&](void*&) {
    return to_new_file([&](int out, size_t done) {
      return write(out, static_cast<char*>(*src) + done, std::min(kMaxIo, bytes - done));
    });
  };
  // The parasite's way: vmsplice the pages into a pipe, splice the pipe into
  // the file (one copy, into the page cache).
  const Op splice_file = [&](void*&) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
    }
    const int pipe_size = fcntl(pipe_fds[1], F_SETPIPE_SZ, kMaxPipe);
    const size_t batch = pipe_size > 0 ? static_cast<size_t>(pipe_size) : kPage * 16;
    absl::Status s = to_new_file([&](int out, size_t done) -> ssize_t {
      iovec iov{static_cast<char*>(*src) + done, std::min(batch, bytes - done)};
      const ssize_t in = vmsplice(pipe_fds[1], &iov, 1, 0);
      for (ssize_t moved = 0; in > 0 && moved < in;) {
        const ssize_t n = splice(pipe_fds[0], nullptr, out, nullptr,
                                 static_cast<size_t>(in - moved), SPLICE_F_MOVE);
        if (n <= 0) return -1;
        moved += n;
      }
      return in;
    });
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return s;
  };
  struct Case {
    const char* what;
    const char* stands_for;
    const Setup& setup;
    const Op& op;
  };
  const Case cases[] = {
      {"first touch of fresh memory, 4 KiB pages", "page faults + zeroing", fresh, touch},
      {"mmap(MAP_POPULATE)", "the same, in one call", none, populate},
      {"first touch of fresh memory, THP", "MADV_HUGEPAGE, 2 MiB pages", huge, touch},
      {"pread of the image into fresh memory", "= what restore does", fresh, read_image},
      {"pread of the image into touched memory", "the copy alone", touched, read_image},
      {"pread of the image into fresh THP memory", "restore with MADV_HUGEPAGE", huge, read_image},
      {"process_vm_readv into touched memory", "the dump's copy (no parasite)", touched, vm_readv},
      {"write of a new file in the images dir", "the dump's write after readv", none, write_file},
      {"vmsplice + splice into a new file", "the parasite's way", none, splice_file},
  };
  absl::PrintF("    kernel operations on %.0f MiB (best of %d; the image is in the page cache):\n",
               bytes / double(1 << 20), kRepeats);
  absl::Status status;
  for (const Case& c : cases) {
    absl::StatusOr<double> seconds = BestOf(bytes, c.setup, c.op);
    if (!seconds.ok()) {
      status = absl::Status(seconds.status().code(),
                            absl::StrCat(c.what, ": ", seconds.status().message()));
      break;
    }
    absl::PrintF("      %-42s %7.3f s %6.2f GB/s  %s\n", c.what, *seconds, bytes / *seconds / 1e9,
                 c.stands_for);
  }
  munmap(*src, bytes);
  close(fd);
  return status;
}

}  // namespace crpp::tools
