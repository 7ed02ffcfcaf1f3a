// events: event-style fds, each description shared with a child process.
//   counter   eventfd with count 5 (O_NONBLOCK), also dup'ed to a second fd;
//   semaphore eventfd with count 3, EFD_SEMAPHORE (O_NONBLOCK);
//   periodic  timerfd on CLOCK_MONOTONIC firing every 20 ms (O_NONBLOCK);
//   oneshot   timerfd on CLOCK_MONOTONIC, 1 hour away;
//   expired   timerfd on CLOCK_MONOTONIC that fired once (1 ms) and was not
//             read: its tick waits to be read;
//   absolute  timerfd on CLOCK_REALTIME set with TFD_TIMER_ABSTIME |
//             TFD_TIMER_CANCEL_ON_SET for 1 hour from now;
//   sigfd     signalfd for SIGUSR2, with SIGUSR2 blocked and one pending;
//   epoll     watching a pipe holding "x" (its read end is fd 0), the
//             counter, the periodic and the one-shot timerfd
//             (level-triggered, EPOLLIN, a tag each).
// The child holds every one of them (fork) and waits on the `request`
// eventfd: when it reads 1 from it, it adds 100 to the counter and exits.
// Verdict (root): epoll reports exactly the pipe, the counter and the
// periodic timer, with their tags; the counter reads 5, then 100 once the
// child added it through its own fd (one description, not two); the
// semaphore reads 1 three times and then nothing; the periodic timer keeps
// its 20 ms interval and fires; the one-shot is still a one-shot with no more
// time left than it had at "ready" and not less than that minus the time
// since; the expired timer reads 1 tick, once, and stays disarmed; the
// absolute one keeps its settime flags (fdinfo) and has at most 1 hour
// left; the signalfd has the mask {SIGUSR2} and reads the pending SIGUSR2
// (sent by this process), once.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

constexpr long kPeriodNs = 20 * 1000 * 1000;
constexpr time_t kOneShotSec = 3600;
constexpr uint64_t kPipeTag = 0x1001, kCounterTag = 0x1002, kPeriodicTag = 0x1003,
                   kOneShotTag = 0x1004;
constexpr uint64_t kChildAdds = 100;

struct Fds {
  int counter, counter_dup, semaphore, periodic, oneshot, expired, absolute, sigfd, epoll, pipe_r,
      pipe_w, request;
};

int64_t Ns(const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

// Waits up to MS for FD to be readable.
bool Readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

// Reads one 8-byte value; false (errno set) if there is none.
bool Read64(int fd, uint64_t& v) {
  ssize_t n;
  do {
    n = read(fd, &v, sizeof v);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof v);
}

void Watch(int epoll, int fd, uint64_t tag) {
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) != 0) crpp::e2e::Die("epoll_ctl");
}

Fds SetUp() {
  Fds f;
  f.counter = eventfd(5, EFD_NONBLOCK);
  f.semaphore = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
  f.request = eventfd(0, 0);
  if (f.counter < 0 || f.semaphore < 0 || f.request < 0) crpp::e2e::Die("eventfd");
  f.counter_dup = dup(f.counter);
  if (f.counter_dup < 0) crpp::e2e::Die("dup");
  f.periodic = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  f.oneshot = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  if (f.periodic < 0 || f.oneshot < 0) crpp::e2e::Die("timerfd_create");
  struct itimerspec its = {{0, kPeriodNs}, {0, kPeriodNs}};
  if (timerfd_settime(f.periodic, 0, &its, nullptr) != 0) crpp::e2e::Die("timerfd_settime");
  its = {{0, 0}, {kOneShotSec, 0}};
  if (timerfd_settime(f.oneshot, 0, &its, nullptr) != 0) crpp::e2e::Die("timerfd_settime");
  f.expired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  f.absolute = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
  if (f.expired < 0 || f.absolute < 0) crpp::e2e::Die("timerfd_create");
  its = {{0, 0}, {0, 1000000}};
  if (timerfd_settime(f.expired, 0, &its, nullptr) != 0) crpp::e2e::Die("timerfd_settime");
  if (!Readable(f.expired, 1000)) crpp::e2e::Die("the 1 ms timer did not fire");
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  its = {{0, 0}, {now.tv_sec + kOneShotSec, now.tv_nsec}};
  if (timerfd_settime(f.absolute, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, nullptr) !=
      0) {
    crpp::e2e::Die("timerfd_settime");
  }
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  if (sigprocmask(SIG_BLOCK, &usr2, nullptr) != 0) crpp::e2e::Die("sigprocmask");
  f.sigfd = signalfd(-1, &usr2, SFD_NONBLOCK);
  if (f.sigfd < 0) crpp::e2e::Die("signalfd");
  if (kill(getpid(), SIGUSR2) != 0) crpp::e2e::Die("kill");
  int p[2];
  if (pipe(p) != 0) crpp::e2e::Die("pipe");
  // The read end as fd 0 (stdin was /dev/null): a low number, which the
  // restore's root may use itself before the fds are in place.
  if (dup2(p[0], 0) != 0) crpp::e2e::Die("dup2");
  close(p[0]);
  f.pipe_r = 0;
  f.pipe_w = p[1];
  if (write(f.pipe_w, "x", 1) != 1) crpp::e2e::Die("write");
  f.epoll = epoll_create1(0);
  if (f.epoll < 0) crpp::e2e::Die("epoll_create1");
  Watch(f.epoll, f.pipe_r, kPipeTag);
  Watch(f.epoll, f.counter, kCounterTag);
  Watch(f.epoll, f.periodic, kPeriodicTag);
  Watch(f.epoll, f.oneshot, kOneShotTag);
  return f;
}

// The child: holds every fd; adds to the counter when asked, then exits
// (also when its parent is gone).
[[noreturn]] void Child(const Fds& f, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (;;) {
    if (getppid() != parent) _exit(2);
    if (!Readable(f.request, 100)) continue;
    uint64_t v = 0;
    if (!Read64(f.request, v)) _exit(3);
    uint64_t add = kChildAdds;
    _exit(write(f.counter_dup, &add, sizeof add) == sizeof add ? 0 : 4);
  }
}

// The number on the line of /proc/self/fdinfo/FD that FORMAT (a sscanf
// format for one uint64_t) matches, or ~0 if there is none.
uint64_t FdInfoNumber(int fd, const char* format) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  FILE* in = fopen(path, "r");
  if (in == nullptr) return ~0ull;
  char line[256];
  uint64_t value = ~0ull;
  while (fgets(line, sizeof line, in) != nullptr) {
    if (sscanf(line, format, &value) == 1) break;
  }
  fclose(in);
  return value;
}

void CheckEpoll(const Fds& f, crpp::e2e::Verdict& v) {
  // The periodic timer has fired by now (it fires every 20 ms).
  Readable(f.periodic, 200);
  struct epoll_event evs[8];
  int n = epoll_wait(f.epoll, evs, 8, 0);
  std::set<uint64_t> ready;
  for (int i = 0; i < n; ++i) {
    ready.insert(evs[i].data.u64);
    v.Expect(evs[i].events == EPOLLIN, "epoll: tag %#" PRIx64 " reported events %#x",
             evs[i].data.u64, evs[i].events);
  }
  v.Expect(ready == std::set<uint64_t>{kPipeTag, kCounterTag, kPeriodicTag},
           "epoll: %d ready (want the pipe, the counter and the periodic timer):%s%s%s%s", n,
           ready.count(kPipeTag) ? " pipe" : "", ready.count(kCounterTag) ? " counter" : "",
           ready.count(kPeriodicTag) ? " periodic" : "",
           ready.count(kOneShotTag) ? " oneshot" : "");
  char c = 0;
  v.Expect(read(f.pipe_r, &c, 1) == 1 && c == 'x', "the pipe lost its byte");
}

void CheckEventFds(const Fds& f, pid_t child, crpp::e2e::Verdict& v) {
  uint64_t count = 0;
  v.Expect(Read64(f.counter, count) && count == 5, "counter read %" PRIu64 " (want 5): %s", count,
           strerror(errno));
  v.Expect((fcntl(f.counter, F_GETFL) & O_NONBLOCK) != 0, "counter lost O_NONBLOCK");
  // The child adds through its copy of the description.
  uint64_t one = 1;
  v.Expect(write(f.request, &one, sizeof one) == sizeof one, "request: %s", strerror(errno));
  count = 0;
  v.Expect(Readable(f.counter, 2000) && Read64(f.counter, count) && count == kChildAdds,
           "counter read %" PRIu64 " after the child's write (want %" PRIu64 ")", count,
           kChildAdds);
  int status = 0;
  v.Expect(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "the child ended with status %#x", status);
  int got = 0;
  for (; got < 4; ++got) {
    uint64_t s = 0;
    if (!Read64(f.semaphore, s)) break;
    v.Expect(s == 1, "semaphore read %" PRIu64 " (want 1)", s);
  }
  v.Expect(got == 3, "semaphore gave %d reads (want 3)", got);
}

void CheckTimers(const Fds& f, int64_t oneshot_left_ns, int64_t ready_ms, crpp::e2e::Verdict& v) {
  struct itimerspec its = {};
  timerfd_gettime(f.periodic, &its);
  v.Expect(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == kPeriodNs,
           "periodic interval is %ld.%09ld s", static_cast<long>(its.it_interval.tv_sec),
           its.it_interval.tv_nsec);
  uint64_t ticks = 0;
  while (Read64(f.periodic, ticks)) {  // what expired so far
  }
  const int64_t start = crpp::e2e::NowMs();
  uint64_t total = 0;
  while (crpp::e2e::NowMs() - start < 200) {
    if (Readable(f.periodic, 50) && Read64(f.periodic, ticks)) total += ticks;
  }
  v.Expect(total >= 3, "periodic: %" PRIu64 " ticks in 200 ms", total);

  timerfd_gettime(f.oneshot, &its);
  const int64_t left = Ns(its.it_value);
  const int64_t since_ready_ns = (crpp::e2e::NowMs() - ready_ms + 1) * 1000000;
  v.Expect(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == 0,
           "the one-shot timer became periodic");
  v.Expect(left > 0 && left <= oneshot_left_ns && left >= oneshot_left_ns - since_ready_ns,
           "one-shot: %" PRId64 " ms left, had %" PRId64 " ms at ready, %" PRId64 " ms ago",
           left / 1000000, oneshot_left_ns / 1000000, since_ready_ns / 1000000);
  v.Note("oneshot_left=%" PRId64 "s", left / 1000000000);

  ticks = 0;
  v.Expect(Read64(f.expired, ticks) && ticks == 1, "expired: read %" PRIu64 " ticks (want 1): %s",
           ticks, strerror(errno));
  v.Expect(!Read64(f.expired, ticks) && errno == EAGAIN, "expired: a second tick");
  timerfd_gettime(f.expired, &its);
  v.Expect(Ns(its.it_value) == 0 && Ns(its.it_interval) == 0, "expired: armed again");

  const uint64_t flags = FdInfoNumber(f.absolute, "settime flags: %" SCNo64);
  v.Expect(flags == (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET),
           "absolute: settime flags %#" PRIo64, flags);
  timerfd_gettime(f.absolute, &its);
  v.Expect(Ns(its.it_value) > 0 && its.it_value.tv_sec < kOneShotSec,
           "absolute: %ld s left (want less than %ld)", static_cast<long>(its.it_value.tv_sec),
           static_cast<long>(kOneShotSec));
}

void CheckSignalFd(const Fds& f, crpp::e2e::Verdict& v) {
  const uint64_t mask = FdInfoNumber(f.sigfd, "sigmask: %" SCNx64);
  v.Expect(mask == 1ull << (SIGUSR2 - 1), "signalfd mask %#" PRIx64, mask);
  struct signalfd_siginfo si = {};
  ssize_t n = read(f.sigfd, &si, sizeof si);
  v.Expect(
      n == sizeof si && si.ssi_signo == SIGUSR2 && si.ssi_pid == static_cast<uint32_t>(getpid()),
      "signalfd read %zd bytes: signal %u from pid %u", n, si.ssi_signo, si.ssi_pid);
  n = read(f.sigfd, &si, sizeof si);
  v.Expect(n < 0 && errno == EAGAIN, "signalfd: a second signal (%zd bytes)", n);
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "events");
  const Fds f = SetUp();
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) Child(f, parent);
  struct itimerspec its = {};
  timerfd_gettime(f.oneshot, &its);
  const int64_t oneshot_left_ns = Ns(its.it_value);
  const int64_t ready_ms = crpp::e2e::NowMs();
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  CheckEpoll(f, v);
  CheckEventFds(f, child, v);
  CheckTimers(f, oneshot_left_ns, ready_ms, v);
  CheckSignalFd(f, v);
  v.Finish();
}
