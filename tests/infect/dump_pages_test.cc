// Parasite::DumpPages on the memory program (64 MiB of checksummed data):
// the bytes it splices into a file are the ones process_vm_readv reads from
// the same ranges, whatever the file (at an offset, O_APPEND) and however
// the ranges are cut (one iovec per page, several round trips); a bad range
// is an error that leaves the parasite usable; the program's checksum holds
// afterwards. And a benchmark printout (not checked): the parasite against
// process_vm_readv + write, and GetTaskState against injected syscalls.
// `bazel test --test_output=all //tests/infect:dump_pages_test` shows it.
#define BOOST_TEST_MODULE dump_pages
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/infect/parasite.h"
#include "core/ptrace/task.h"
#include "tests/e2e/harness.h"
#include "tests/infect/infect_testing.h"
#include "tests/testing/files.h"

namespace {

using crpp::e2e::Session;
using crpp::infect::PageRange;
using crpp::infect::Parasite;
using crpp::ptrace::Leave;
using crpp::ptrace::Task;
namespace it = crpp::infect::testing;

constexpr uint64_t kPage = 4096;

#define REQUIRE_OK(expr)                                                                   \
  do {                                                                                     \
    const ::absl::Status require_ok_status = (expr);                                       \
    BOOST_REQUIRE_MESSAGE(require_ok_status.ok(), #expr " failed: " << require_ok_status); \
  } while (0)

int Create(const std::string& path, int extra_flags = 0) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | extra_flags, 0600);
  BOOST_REQUIRE_MESSAGE(fd >= 0, path);
  return fd;
}

// The file `path` after `fill` wrote into it.
template <class Fill>
std::string Written(const std::string& path, Fill fill, int extra_flags = 0) {
  int fd = Create(path, extra_flags);
  fill(fd);
  close(fd);
  std::string bytes = crpp::testing::Slurp(path);
  unlink(path.c_str());
  return bytes;
}

// Requires equal contents without printing megabytes.
void RequireSame(const std::string& got, const std::string& want, const char* what) {
  BOOST_REQUIRE_MESSAGE(got.size() == want.size(),
                        what << ": " << got.size() << " bytes, want " << want.size());
  auto [g, w] = std::mismatch(got.begin(), got.end(), want.begin());
  BOOST_REQUIRE_MESSAGE(g == got.end(), what << ": first difference at byte " << (g - got.begin()));
}

struct Started {
  std::unique_ptr<Task> task;
  std::vector<PageRange> ranges;
  std::string before;
  // The thread's rseq area: the kernel rewrites its cpu_id and friends
  // whenever the thread runs, and running the parasite is running it.
  uint64_t rseq = 0;
  uint32_t rseq_len = 0;

  // `image`, laid out as `layout`, with the rseq area zeroed: what may
  // differ between two reads of a task that ran in between.
  std::string Stable(std::string image, absl::Span<const PageRange> layout) const {
    uint64_t at = 0;
    for (const PageRange& r : layout) {
      const uint64_t end = r.start + r.pages * kPage;
      const uint64_t lo = std::max(r.start, rseq), hi = std::min(end, rseq + rseq_len);
      if (lo < hi && at + (hi - r.start) <= image.size()) {
        image.replace(at + (lo - r.start), hi - lo, hi - lo, '\0');
      }
      at += r.pages * kPage;
    }
    return image;
  }
};

// PTRACE_GET_RSEQ_CONFIGURATION's answer (<linux/ptrace.h> clashes with glibc's).
struct RseqConfiguration {
  uint64_t rseq_abi_pointer;
  uint32_t rseq_abi_size, signature, flags, pad;
};
constexpr int kGetRseqConfiguration = 0x420f;

Started StartMemory(Session& s) {
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  Started st;
  auto view = it::FullView(s.pid());
  E2E_REQUIRE_OK(s, view.status());
  st.before = *view;
  auto task = Task::Seize(s.pid());
  E2E_REQUIRE_OK(s, task.status());
  st.task = std::move(*task);
  auto ranges = it::AnonymousPages(s.pid());
  E2E_REQUIRE_OK(s, ranges.status());
  st.ranges = std::move(*ranges);
  RseqConfiguration rseq{};
  if (ptrace(static_cast<__ptrace_request>(kGetRseqConfiguration), s.pid(), sizeof rseq, &rseq) >
      0) {
    st.rseq = rseq.rseq_abi_pointer;
    st.rseq_len = rseq.rseq_abi_size;
  }
  BOOST_REQUIRE_GE(it::TotalBytes(st.ranges), uint64_t{64} << 20);
  return st;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

BOOST_AUTO_TEST_CASE(pages_are_what_process_vm_readv_reads) {
  Session s("pages_contents", "memory");
  Started st = StartMemory(s);
  const pid_t pid = s.pid();
  const std::string tmp = s.dir();
  const std::string want = st.Stable(
      Written(tmp + "/readv.img", [&](int fd) { REQUIRE_OK(it::ReadvPages(pid, st.ranges, fd)); }),
      st.ranges);
  {
    // Whole ranges (the data is one of 64 MiB): vmsplice stops mid-iovec
    // each time the pipe is full.
    auto parasite = Parasite::Infect(*st.task);
    REQUIRE_OK(parasite.status());
    Parasite& p = **parasite;
    // At the file position, after what the file holds already.
    const std::string got = Written(tmp + "/parasite.img", [&](int fd) {
      BOOST_REQUIRE(write(fd, "head", 4) == 4);
      REQUIRE_OK(p.DumpPages(st.ranges, fd));
    });
    BOOST_TEST(got.substr(0, 4) == "head");
    RequireSame(st.Stable(got.substr(4), st.ranges), want, "into a file");
    // splice() refuses an O_APPEND file: read() and write() instead.
    const std::string appended = Written(
        tmp + "/append.img", [&](int fd) { REQUIRE_OK(p.DumpPages(st.ranges, fd)); }, O_APPEND);
    RequireSame(st.Stable(appended, st.ranges), want, "into an O_APPEND file");

    // A page that is not mapped, after one that is: an error that says how
    // far it got; the pipe is empty afterwards and the parasite still works.
    const PageRange first = {st.ranges[0].start, 1};
    const std::vector<PageRange> bad = {first, {0x1000, 1}, first};
    const std::string partial = Written(tmp + "/bad.img", [&](int fd) {
      absl::Status s = p.DumpPages(bad, fd);
      BOOST_TEST_MESSAGE(s);
      BOOST_TEST(absl::StrContains(s.message(), "Bad address (after 4096 of 12288 bytes)"));
    });
    RequireSame(st.Stable(partial, {first}), want.substr(0, kPage), "up to the bad page");
    REQUIRE_OK(p.GetTaskState().status());
    // The same in stripes (64 MiB: through the two pipes in turn): all that
    // came before the bad page is there, in order, and the file ends after
    // it.
    std::vector<PageRange> long_bad = st.ranges;
    long_bad.push_back({0x1000, 1});
    const std::string striped = Written(tmp + "/bad-striped.img", [&](int fd) {
      absl::Status s = p.DumpPages(long_bad, fd);
      BOOST_TEST_MESSAGE(s);
      BOOST_TEST(absl::StrContains(s.message(), "Bad address"));
      BOOST_TEST(lseek(fd, 0, SEEK_CUR) == static_cast<off_t>(it::TotalBytes(st.ranges)));
    });
    RequireSame(st.Stable(striped, st.ranges), want, "in stripes, up to the bad page");
    REQUIRE_OK(p.GetTaskState().status());
    const std::string again = Written(tmp + "/again.img", [&](int fd) {
      REQUIRE_OK(p.DumpPages(std::vector<PageRange>{first, first}, fd));
    });
    RequireSame(st.Stable(again, {first, first}), want.substr(0, kPage) + want.substr(0, kPage),
                "after the error");
    REQUIRE_OK(p.Cure());
  }
  {
    // One iovec per page, in an area that holds a few thousand of them:
    // several DUMP_PAGES round trips of several vmsplice calls each.
    std::vector<PageRange> pages;
    for (const PageRange& r : st.ranges) {
      for (uint64_t i = 0; i < r.pages; ++i) pages.push_back({r.start + i * kPage, 1});
    }
    auto parasite = Parasite::Infect(*st.task, 128 << 10);
    REQUIRE_OK(parasite.status());
    const std::string got =
        Written(tmp + "/pages.img", [&](int fd) { REQUIRE_OK((*parasite)->DumpPages(pages, fd)); });
    RequireSame(st.Stable(got, pages), want, "page by page");
    REQUIRE_OK((*parasite)->Cure());
  }
  REQUIRE_OK(st.task->Release(Leave::kRunning));
  E2E_REQUIRE_OK(s, it::ExpectFullView(pid, st.before));
  E2E_REQUIRE_OK(s, s.Verdict());
}

BOOST_AUTO_TEST_CASE(benchmark) {
  Session s("pages_benchmark", "memory");
  Started st = StartMemory(s);
  const pid_t pid = s.pid();
  const double mib = static_cast<double>(it::TotalBytes(st.ranges)) / (1 << 20);
  const std::string path = s.dir() + "/bench.img";
  using Clock = std::chrono::steady_clock;

  auto t0 = Clock::now();
  auto parasite = Parasite::Infect(*st.task);
  const double infect_s = Seconds(Clock::now() - t0);
  REQUIRE_OK(parasite.status());
  // Best of 5 of each way, into a file (what a dump does) and into
  // /dev/null (the transfer alone, without the copy into the page cache).
  struct Best {
    double parasite = 1e9, readv = 1e9;
  } file, null;
  auto measure = [&](Best& best, int fd) {
    auto a = Clock::now();
    REQUIRE_OK((*parasite)->DumpPages(st.ranges, fd));
    auto b = Clock::now();
    REQUIRE_OK(it::ReadvPages(pid, st.ranges, fd));
    best.parasite = std::min(best.parasite, Seconds(b - a));
    best.readv = std::min(best.readv, Seconds(Clock::now() - b));
  };
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  BOOST_REQUIRE(null_fd >= 0);
  for (int round = 0; round < 5; ++round) {
    Written(path, [&](int fd) { measure(file, fd); });
    measure(null, null_fd);
  }
  close(null_fd);
  // One GetTaskState round trip against the syscalls core_dump.cc injects
  // for the same facts (64 + 3 + 16 + 1 + 5, each a ptrace round trip).
  t0 = Clock::now();
  for (int i = 0; i < 10; ++i) REQUIRE_OK((*parasite)->GetTaskState().status());
  const double state_s = Seconds(Clock::now() - t0) / 10;
  t0 = Clock::now();
  REQUIRE_OK((*parasite)->Cure());
  const double cure_s = Seconds(Clock::now() - t0);
  t0 = Clock::now();
  for (int i = 0; i < 89; ++i) REQUIRE_OK(st.task->SyscallOk("getpid", SYS_getpid).status());
  const double injected_s = Seconds(Clock::now() - t0);

  std::printf("dump of %.1f MiB (%zu ranges), best of 5:\n", mib, st.ranges.size());
  for (const auto& [name, best] : {std::pair{"a file", file}, std::pair{"/dev/null", null}}) {
    std::printf("  into %s:\n", name);
    std::printf("    parasite (vmsplice + splice): %7.2f ms  %6.0f MiB/s\n", best.parasite * 1e3,
                mib / best.parasite);
    std::printf("    process_vm_readv + write:     %7.2f ms  %6.0f MiB/s\n", best.readv * 1e3,
                mib / best.readv);
  }
  std::printf("infect %.2f ms, cure %.2f ms; GetTaskState %.1f us, 89 injected syscalls %.1f us\n",
              infect_s * 1e3, cure_s * 1e3, state_s * 1e6, injected_s * 1e6);
  REQUIRE_OK(st.task->Release(Leave::kRunning));
  E2E_REQUIRE_OK(s, it::ExpectFullView(pid, st.before));
  E2E_REQUIRE_OK(s, s.Verdict());
}
