// epoll_nested: an epoll (outer) watching an fd of each kind the engine
// dumps, one of them a second epoll (inner); a child holds both (fork):
//   sock     one end of a UNIX stream socketpair holding "hello"
//            (EPOLLIN | EPOLLRDHUP): ready;
//   fifo     the read end of OUTDIR/fifo, empty (EPOLLIN | EPOLLET);
//   inotify  an inotify instance watching OUTDIR for IN_CREATE, nothing
//            queued (EPOLLIN);
//   sigfd    a signalfd for SIGUSR2, which is blocked and pending (EPOLLIN):
//            ready;
//   pidfd    a pidfd of the child (EPOLLIN: ready once the child ends);
//   random   /dev/random (EPOLLIN): ready, its pool is;
//   moved    an eventfd with count 0 registered as fd 60, a dup of it
//            closed since: the program holds it under its first number only
//            (EPOLLIN);
//   inner    the inner epoll (EPOLLIN), which watches a pipe, empty
//            (EPOLLIN), and another pipe holding "q" with EPOLLIN |
//            EPOLLONESHOT that fired already (disarmed: its events are
//            EPOLLONESHOT alone).
// Each target has a tag of its own as data.
// Verdict: the "tfd:" lines of both epolls' fdinfo show the fd numbers,
// events and data they showed at "ready", but for the moved eventfd, which
// a restore names by the number the program holds it under (the one it was
// registered under is closed); the outer epoll reports at once exactly
// sock, sigfd and random; once the FIFO and the inner pipe are written, a
// file is created in OUTDIR, the eventfd written and the child killed, it
// reports every target (the inner epoll through its pipe); the inner epoll
// then reports its pipe and not the disarmed one-shot; the child held the
// same outer epoll (kcmp).
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "tests/e2e/programs/common.h"

namespace {

enum Tag : uint64_t {
  kSock = 0x5001,
  kFifo,
  kInotify,
  kSigfd,
  kPidfd,
  kRandom,
  kMoved,
  kInner,
  kPipe,     // in the inner epoll
  kOneShot,  // in the inner epoll
};
constexpr int kMovedNumber = 60;

struct Fds {
  int sock = -1, sock_peer = -1, fifo_r = -1, fifo_w = -1, inotify = -1, sigfd = -1, pidfd = -1,
      random = -1, moved = -1, outer = -1, inner = -1, pipe_r = -1, pipe_w = -1, oneshot_r = -1;
  pid_t child = -1;
};

// A target as fdinfo shows it: (fd number, events, data).
using Target = std::tuple<int, uint32_t, uint64_t>;

std::set<Target> Targets(int epoll) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epoll);
  std::set<Target> out;
  FILE* in = fopen(path, "r");
  if (in == nullptr) return out;
  char line[256];
  while (fgets(line, sizeof line, in) != nullptr) {
    int tfd = 0;
    unsigned events = 0;
    unsigned long long data = 0;
    if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &events, &data) == 3) {
      out.emplace(tfd, events, data);
    }
  }
  fclose(in);
  return out;
}

std::string Show(const std::set<Target>& targets) {
  std::string out;
  for (const auto& [tfd, events, data] : targets) {
    char buf[64];
    snprintf(buf, sizeof buf, " %d:%#x:%#" PRIx64, tfd, events, data);
    out += buf;
  }
  return out;
}

void Add(int epoll, int fd, uint32_t events, uint64_t tag) {
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = tag;
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) != 0) crpp::e2e::Die("epoll_ctl");
}

// The tags EPOLL reports within MS (0: at once), gathered until ALL are seen.
std::set<uint64_t> Ready(int epoll, int ms, const std::set<uint64_t>& all = {}) {
  std::set<uint64_t> seen;
  const int64_t start = crpp::e2e::NowMs();
  do {
    struct epoll_event evs[16];
    int n = epoll_wait(epoll, evs, 16, ms > 0 ? 20 : 0);
    for (int i = 0; i < n; ++i) seen.insert(evs[i].data.u64);
    if (!all.empty() && seen == all) break;
  } while (crpp::e2e::NowMs() - start < ms);
  return seen;
}

std::string Names(const std::set<uint64_t>& tags) {
  static const std::map<uint64_t, const char*> kNames = {
      {kSock, "sock"},   {kFifo, "fifo"},      {kInotify, "inotify"}, {kSigfd, "sigfd"},
      {kPidfd, "pidfd"}, {kRandom, "random"},  {kMoved, "moved"},     {kInner, "inner"},
      {kPipe, "pipe"},   {kOneShot, "oneshot"}};
  std::string out;
  for (uint64_t t : tags) out += std::string(" ") + (kNames.count(t) ? kNames.at(t) : "?");
  return out.empty() ? " (none)" : out;
}

Fds SetUp(const std::string& out) {
  Fds f;
  int sv[2], p[2], q[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(p) != 0 || pipe(q) != 0) {
    crpp::e2e::Die("socketpair/pipe");
  }
  f.sock = sv[0];
  f.sock_peer = sv[1];
  if (write(f.sock_peer, "hello", 5) != 5) crpp::e2e::Die("write");
  f.pipe_r = p[0];
  f.pipe_w = p[1];
  f.oneshot_r = q[0];
  if (write(q[1], "q", 1) != 1) crpp::e2e::Die("write");
  close(q[1]);
  const std::string fifo = out + "/fifo";
  if (mkfifo(fifo.c_str(), 0600) != 0) crpp::e2e::Die("mkfifo");
  f.fifo_r = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  f.fifo_w = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
  f.inotify = inotify_init1(IN_NONBLOCK);
  if (f.fifo_r < 0 || f.fifo_w < 0 || f.inotify < 0) crpp::e2e::Die("fifo/inotify");
  if (inotify_add_watch(f.inotify, out.c_str(), IN_CREATE) != 1) crpp::e2e::Die("watch");
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  if (sigprocmask(SIG_BLOCK, &usr2, nullptr) != 0) crpp::e2e::Die("sigprocmask");
  f.sigfd = signalfd(-1, &usr2, SFD_NONBLOCK);
  if (f.sigfd < 0 || kill(getpid(), SIGUSR2) != 0) crpp::e2e::Die("signalfd");
  f.random = open("/dev/random", O_RDONLY | O_CLOEXEC);
  f.moved = eventfd(0, EFD_NONBLOCK);
  if (f.random < 0 || f.moved < 0) crpp::e2e::Die("open /dev/random, eventfd");

  f.inner = epoll_create1(0);
  f.outer = epoll_create1(EPOLL_CLOEXEC);
  if (f.inner < 0 || f.outer < 0) crpp::e2e::Die("epoll_create1");
  Add(f.inner, f.pipe_r, EPOLLIN, kPipe);
  Add(f.inner, f.oneshot_r, EPOLLIN | EPOLLONESHOT, kOneShot);
  struct epoll_event ev;
  if (epoll_wait(f.inner, &ev, 1, 0) != 1 || ev.data.u64 != kOneShot) crpp::e2e::Die("one-shot");
  Add(f.outer, f.sock, EPOLLIN | EPOLLRDHUP, kSock);
  Add(f.outer, f.fifo_r, EPOLLIN | EPOLLET, kFifo);
  Add(f.outer, f.inotify, EPOLLIN, kInotify);
  Add(f.outer, f.sigfd, EPOLLIN, kSigfd);
  Add(f.outer, f.random, EPOLLIN, kRandom);
  Add(f.outer, f.inner, EPOLLIN, kInner);
  if (dup2(f.moved, kMovedNumber) != kMovedNumber) crpp::e2e::Die("dup2");
  Add(f.outer, kMovedNumber, EPOLLIN, kMoved);
  close(kMovedNumber);

  const pid_t parent = getpid();
  f.child = fork();
  if (f.child < 0) crpp::e2e::Die("fork");
  if (f.child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    for (;;) pause();
  }
  f.pidfd = static_cast<int>(syscall(SYS_pidfd_open, f.child, 0));
  if (f.pidfd < 0) crpp::e2e::Die("pidfd_open");
  Add(f.outer, f.pidfd, EPOLLIN, kPidfd);
  return f;
}

// The targets at "ready" as a restore shows them: the moved eventfd under
// the number the program holds it by.
std::set<Target> Restored(const std::set<Target>& at_ready, int moved) {
  std::set<Target> out;
  for (auto [tfd, events, data] : at_ready) {
    out.emplace(tfd == kMovedNumber ? moved : tfd, events, data);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "epoll_nested");
  const Fds f = SetUp(out);
  const std::set<Target> outer_at_ready = Targets(f.outer), inner_at_ready = Targets(f.inner);
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  const std::set<Target> outer = Targets(f.outer), inner = Targets(f.inner);
  v.Expect(outer == outer_at_ready || outer == Restored(outer_at_ready, f.moved),
           "outer epoll targets:%s (at ready:%s)", Show(outer).c_str(),
           Show(outer_at_ready).c_str());
  v.Expect(outer.size() == 8, "outer epoll: %zu targets (want 8)", outer.size());
  v.Expect(inner == inner_at_ready, "inner epoll targets:%s (at ready:%s)", Show(inner).c_str(),
           Show(inner_at_ready).c_str());
  v.Expect(syscall(SYS_kcmp, getpid(), f.child, KCMP_FILE, f.outer, f.outer) == 0,
           "the child holds another outer epoll");

  const std::set<uint64_t> at_once = Ready(f.outer, 0);
  v.Expect(at_once == std::set<uint64_t>{kSock, kSigfd, kRandom},
           "the outer epoll reports at once:%s (want sock sigfd random)", Names(at_once).c_str());

  const std::set<uint64_t> all = {kSock, kFifo, kInotify, kSigfd, kPidfd, kRandom, kMoved, kInner};
  uint64_t one = 1;
  // (Created anew: a copy restored after dump -R verifies again.)
  const std::string created = out + "/created";
  unlink(created.c_str());
  int fd = open(created.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  v.Expect(fd >= 0 && write(f.fifo_w, "f", 1) == 1 && write(f.pipe_w, "p", 1) == 1 &&
               write(f.moved, &one, sizeof one) == sizeof one && kill(f.child, SIGKILL) == 0,
           "making the targets ready: %s", strerror(errno));
  if (fd >= 0) close(fd);
  const std::set<uint64_t> later = Ready(f.outer, 2000, all);
  v.Expect(later == all, "the outer epoll reports:%s (want all 8)", Names(later).c_str());
  const std::set<uint64_t> inner_ready = Ready(f.inner, 0);
  v.Expect(inner_ready == std::set<uint64_t>{kPipe}, "the inner epoll reports:%s (want pipe)",
           Names(inner_ready).c_str());

  char buf[8] = {};
  v.Expect(read(f.sock, buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0,
           "the socket lost its bytes");
  int status = 0;
  v.Expect(waitpid(f.child, &status, 0) == f.child && WIFSIGNALED(status),
           "the child did not end with its signal (status %#x)", status);
  v.Note("outer:%s inner:%s", Show(outer).c_str(), Show(inner).c_str());
  v.Finish();
}
