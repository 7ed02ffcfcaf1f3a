#define BOOST_TEST_MODULE events
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <string>

// <signal.h>'s deprecated sigmask() macro would rewrite the proto accessor.
#undef sigmask

#include "core/context.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "fdinfo.pb.h"
#include "resources/events/eventfd.h"
#include "resources/events/signalfd.h"
#include "resources/events/timerfd.h"
#include "tests/testing/files.h"

namespace crpp {
namespace {

constexpr uint64_t kBigCount = 1ull << 40;  // more than eventfd() takes
constexpr long kPeriodNs = 50 * 1000 * 1000;
// SIGUSR2, signal 33 (glibc keeps it to itself: no sigaddset) and SIGRTMAX.
constexpr uint64_t kMask = (1ull << (SIGUSR2 - 1)) | (1ull << 32) | (1ull << 63);

// What the dump sees in this very process.
struct Own {
  int big = -1, big_dup = -1, semaphore = -1, expired = -1, periodic = -1, sigfd = -1;
  Own() {
    big = eventfd(0, EFD_NONBLOCK);
    uint64_t v = kBigCount;
    BOOST_REQUIRE(big >= 0 && write(big, &v, sizeof v) == sizeof v);
    big_dup = dup(big);
    semaphore = eventfd(2, EFD_SEMAPHORE);
    expired = timerfd_create(CLOCK_BOOTTIME, 0);
    itimerspec its = {{0, 0}, {0, 1000}};
    BOOST_REQUIRE(timerfd_settime(expired, 0, &its, nullptr) == 0);
    pollfd p = {expired, POLLIN, 0};
    BOOST_REQUIRE(poll(&p, 1, 1000) == 1);
    periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    its = {{0, kPeriodNs}, {0, kPeriodNs}};
    BOOST_REQUIRE(timerfd_settime(periodic, 0, &its, nullptr) == 0);
    uint64_t mask = kMask;
    sigfd = static_cast<int>(syscall(SYS_signalfd4, -1, &mask, sizeof mask, SFD_NONBLOCK));
    BOOST_REQUIRE(big_dup >= 0 && semaphore >= 0 && periodic >= 0 && sigfd >= 0);
  }
  ~Own() {
    for (int fd : {big, big_dup, semaphore, expired, periodic, sigfd}) close(fd);
  }
};

uint64_t FdInfoHex(int fd, const char* format) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  FILE* in = fopen(path, "r");
  uint64_t value = ~0ull;
  char line[256];
  while (in != nullptr && fgets(line, sizeof line, in) != nullptr) {
    if (sscanf(line, format, &value) == 1) break;
  }
  if (in != nullptr) fclose(in);
  return value;
}

void WriteFiles(const std::string& dir, const FileTable& table) {
  auto w = images::TypedImageWriter<criu::file_entry>::Create(dir + "/files.img", images::Files());
  BOOST_REQUIRE(w.ok());
  for (const auto& e : table.entries()) BOOST_REQUIRE(w->Write(e).ok());
  BOOST_REQUIRE(w->Close().ok());
}

// A child holding copies of our fds, still as long as it lives (the dump
// wants a task whose fds do not change: not this one, whose list of its own
// fds holds the directory being read).
struct Holder {
  pid_t pid = fork();
  Holder() {
    if (pid == 0) {
      for (;;) pause();
    }
    BOOST_REQUIRE(pid > 0);
  }
  ~Holder() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

BOOST_AUTO_TEST_CASE(round_trip) {
  Own own;
  Holder holder;
  const pid_t pid = holder.pid;
  const std::string dir = testing::FreshDir("events-round-trip");
  FileTable table;
  DumpContext d{.root_pid = pid, .images_dir = dir};
  d.tree.push_back(TreeTask{.pid = pid});
  d.files = &table;
  for (auto dump :
       {resources::EventFd::Dump, resources::TimerFd::Dump, resources::SignalFd::Dump}) {
    absl::Status s = dump(d);
    BOOST_REQUIRE_MESSAGE(s.ok(), s);
  }
  // One entry per description: the dup'ed eventfd is one.
  auto ref = [&d, pid](int fd) {
    auto it = d.fd_ids.find(std::make_pair(pid, fd));
    BOOST_REQUIRE_MESSAGE(it != d.fd_ids.end(), "fd " << fd << " was not dumped");
    return it->second;
  };
  const uint32_t big_id = ref(own.big).id;
  BOOST_TEST(ref(own.big_dup).id == big_id);
  BOOST_TEST(ref(own.big).type == criu::EVENTFD);
  const uint32_t semaphore_id = ref(own.semaphore).id;
  const uint32_t expired_id = ref(own.expired).id;
  const uint32_t periodic_id = ref(own.periodic).id;
  const uint32_t sigfd_id = ref(own.sigfd).id;
  BOOST_TEST(ref(own.periodic).type == criu::TIMERFD);
  BOOST_TEST(ref(own.sigfd).type == criu::SIGNALFD);
  for (const auto& e : table.entries()) {
    if (e.has_efd()) BOOST_TEST(e.efd().id() == e.id());
    if (e.has_tfd()) BOOST_TEST(e.tfd().id() == e.id());
  }
  // The dump consumed nothing.
  uint64_t v = 0;
  BOOST_REQUIRE(read(own.big, &v, sizeof v) == sizeof v);
  BOOST_TEST(v == kBigCount);
  BOOST_REQUIRE(write(own.big, &v, sizeof v) == sizeof v);
  WriteFiles(dir, table);

  RestoreContext r{.images_dir = dir};
  r.fd_base = 600;
  for (auto restore :
       {resources::EventFd::Restore, resources::TimerFd::Restore, resources::SignalFd::Restore}) {
    absl::Status s = restore(r);
    BOOST_REQUIRE_MESSAGE(s.ok(), s);
  }
  BOOST_REQUIRE_EQUAL(r.inherited.size(), 5u);
  for (const auto& [id, fd] : r.inherited) {
    BOOST_TEST(fd >= r.fd_base);
    BOOST_TEST(fcntl(fd, F_GETFD) == FD_CLOEXEC);
  }
  const int big = r.inherited[big_id], semaphore = r.inherited[semaphore_id];
  BOOST_TEST((fcntl(big, F_GETFL) & O_NONBLOCK) != 0);
  BOOST_TEST((fcntl(semaphore, F_GETFL) & O_NONBLOCK) == 0);
  BOOST_TEST(FdInfoHex(big, "eventfd-count: %" SCNx64) == kBigCount);
  BOOST_TEST(FdInfoHex(semaphore, "eventfd-semaphore: %" SCNu64) == 1u);
  BOOST_REQUIRE(read(semaphore, &v, sizeof v) == sizeof v);
  BOOST_TEST(v == 1u);
  BOOST_TEST(FdInfoHex(semaphore, "eventfd-count: %" SCNx64) == 1u);

  // The expired one-shot has its unread tick back, and is not armed again.
  const int expired = r.inherited[expired_id];
  BOOST_TEST(FdInfoHex(expired, "clockid: %" SCNu64) == static_cast<uint64_t>(CLOCK_BOOTTIME));
  BOOST_REQUIRE(read(expired, &v, sizeof v) == sizeof v);
  BOOST_TEST(v == 1u);
  itimerspec its = {};
  BOOST_REQUIRE(timerfd_gettime(expired, &its) == 0);
  BOOST_TEST(its.it_value.tv_sec == 0);
  BOOST_TEST(its.it_value.tv_nsec == 0);

  const int periodic = r.inherited[periodic_id];
  BOOST_REQUIRE(timerfd_gettime(periodic, &its) == 0);
  BOOST_TEST(its.it_interval.tv_nsec == kPeriodNs);
  BOOST_TEST(its.it_value.tv_nsec > 0);
  BOOST_TEST(its.it_value.tv_nsec <= kPeriodNs);

  BOOST_TEST(FdInfoHex(r.inherited[sigfd_id], "sigmask: %" SCNx64) == kMask);
  for (const auto& [id, fd] : r.inherited) close(fd);
}

BOOST_AUTO_TEST_CASE(restore_refuses_an_entry_without_its_payload) {
  const std::string dir = testing::FreshDir("events-bad");
  FileTable table;
  criu::file_entry e;
  e.set_type(criu::TIMERFD);
  e.set_id(0);
  table.Add(e);
  WriteFiles(dir, table);
  RestoreContext r{.images_dir = dir};
  absl::Status s = resources::TimerFd::Restore(r);
  BOOST_TEST(s.code() == absl::StatusCode::kDataLoss);
  BOOST_TEST(std::string(s.message()) == "files.img: timerfd entry 1 has no tfd");
  BOOST_TEST(r.inherited.empty());
}

}  // namespace
}  // namespace crpp
