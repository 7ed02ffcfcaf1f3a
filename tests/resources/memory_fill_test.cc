// The memory plugin's fill of inherited premaps (resources/mm/memory_fill.h):
// which pages are compared, copied or dropped, and, in a real forked child,
// that a comparison keeps equal pages shared with the parent and writes the
// others.
#define BOOST_TEST_MODULE memory_fill
#include "resources/mm/memory_fill.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "tests/testing/files.h"

namespace crpp::resources::fill {
namespace {

constexpr uint64_t kStart = 0x10000000, kAt = 0x70000000;

uint64_t P(uint64_t n) { return n * kPage; }

struct Expect {
  uint64_t page, pages;
  off_t off;
  bool compare;
};

void RequireJobs(const InheritedPlan& plan, const std::vector<Expect>& want) {
  BOOST_REQUIRE_EQUAL(plan.jobs.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    BOOST_TEST_CONTEXT("job " << i) {
      BOOST_TEST(reinterpret_cast<uint64_t>(plan.jobs[i].dst) == kAt + P(want[i].page));
      BOOST_TEST(plan.jobs[i].len == P(want[i].pages));
      BOOST_TEST(plan.jobs[i].off == want[i].off);
      BOOST_TEST(plan.jobs[i].compare == want[i].compare);
    }
  }
}

// The child has pages 0-9 (shared at dump) and 20-24 (its own); the parent
// has 5-14 and 22-29. Compared: 5-9 only. Copied: 0-4 (the parent has none),
// 20-24 (own pages). Dropped: the parent's pages not compared (10-14 and
// 22-29: the copy into 22-24 must not copy the parent's pages first).
BOOST_AUTO_TEST_CASE(plan_of_an_inherited_vma) {
  const std::vector<Run> mine = {{kStart, 10, 0, true}, {kStart + P(20), 5, off_t(P(10)), false}};
  const std::vector<Run> parent = {{kStart + P(5), 10, 0, true}, {kStart + P(22), 8, 0, false}};
  InheritedPlan plan = PlanInherited(kAt, kStart, mine, parent);
  RequireJobs(plan, {{5, 5, off_t(P(5)), true}, {0, 5, 0, false}, {20, 5, off_t(P(10)), false}});
  const Ranges drop = {{kAt + P(10), kAt + P(15)}, {kAt + P(22), kAt + P(30)}};
  BOOST_TEST((plan.drop == drop));
}

// Nothing of the parent's: everything is copied, nothing dropped.
BOOST_AUTO_TEST_CASE(plan_without_parent_pages) {
  const std::vector<Run> mine = {{kStart + P(3), 2, 0, true}};
  InheritedPlan plan = PlanInherited(kAt, kStart, mine, {});
  RequireJobs(plan, {{3, 2, 0, false}});
  BOOST_TEST(plan.drop.empty());
}

// The child has none of the parent's pages: all dropped (they read as zero).
BOOST_AUTO_TEST_CASE(plan_without_own_pages) {
  const std::vector<Run> parent = {{kStart, 2, 0, true}, {kStart + P(2), 3, 0, false}};
  InheritedPlan plan = PlanInherited(kAt, kStart, {}, parent);
  BOOST_TEST(plan.jobs.empty());
  const Ranges drop = {{kAt, kAt + P(5)}};
  BOOST_TEST((plan.drop == drop));
}

// Whether each of the N pages at MEM is mapped only here (PM_MMAP_EXCLUSIVE).
std::vector<bool> Exclusive(const char* mem, uint64_t n) {
  std::vector<uint64_t> e(n);
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  pread(fd, e.data(), n * 8, static_cast<off_t>(reinterpret_cast<uint64_t>(mem) / kPage * 8));
  close(fd);
  std::vector<bool> out(n);
  for (uint64_t i = 0; i < n; ++i) out[i] = (e[i] >> 56) & 1;
  return out;
}

// A forked child compares 8 inherited pages with a pages image in which
// pages 2 and 5 differ: those two are written and its own, the other six
// stay the parent's (not exclusively mapped). Over 64 MiB of jobs are split
// between two threads: a long equal run is compared too.
BOOST_AUTO_TEST_CASE(compare_keeps_equal_pages_shared) {
  constexpr uint64_t kPages = 8, kBig = 16384 + 64;
  auto* mem = static_cast<char*>(
      mmap(nullptr, P(kPages + kBig), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  BOOST_REQUIRE(mem != MAP_FAILED);
  std::string image(P(kPages + kBig), '\0');
  for (uint64_t p = 0; p < kPages + kBig; ++p) {
    memset(mem + P(p), static_cast<int>(p % 200 + 1), kPage);
    memset(&image[P(p)], static_cast<int>(p % 200 + 1), kPage);
  }
  image[P(2) + 7] = 'x';
  image[P(5) + 4095] = 'y';
  const std::string path = testing::TempDir() + "/pages.img";
  testing::Spit(path, image);
  const pid_t child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    uint64_t same = 0;
    std::vector<Job> jobs = {{mem, 0, P(kPages), true},
                             {mem + P(kPages), off_t(P(kPages)), P(kBig), true}};
    bool ok = fd >= 0 && RunJobs(fd, path, jobs, same).ok() && same == kPages + kBig - 2 &&
              memcmp(mem, image.data(), image.size()) == 0;
    const std::vector<bool> own = Exclusive(mem, kPages + kBig);
    for (uint64_t p = 0; p < kPages + kBig; ++p) ok = ok && own[p] == (p == 2 || p == 5);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  BOOST_REQUIRE(waitpid(child, &st, 0) == child);
  BOOST_TEST((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  BOOST_TEST(mem[P(2) + 7] != 'x');  // the parent's page is its own still
}

// A truncated image is an error naming the file.
BOOST_AUTO_TEST_CASE(short_image) {
  const std::string path = testing::TempDir() + "/short.img";
  testing::Spit(path, std::string(kPage, 'a'));
  std::vector<char> buf(P(2));
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  uint64_t same = 0;
  absl::Status s = RunJobs(fd, path, {{buf.data(), 0, P(2), true}}, same);
  close(fd);
  BOOST_TEST(!s.ok());
  BOOST_TEST(std::string(s.message()).find(path) != std::string::npos);
}

}  // namespace
}  // namespace crpp::resources::fill
