// Probes of /proc file interfaces: fdinfo of the special files, mnt_id, lock
// and timerfd fields, ptys, POSIX timers, loginuid, stat, IPC id sysctls.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

#ifndef F_GETOWNER_UIDS
#define F_GETOWNER_UIDS 17
#endif
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

namespace crpp::kerndat::internal {
namespace {

std::optional<std::string> FdInfo(int fd) {
  return ReadFile(absl::StrCat("/proc/self/fdinfo/", fd));
}

// The text after "key" up to the end of its line, leading blanks removed.
std::optional<std::string> Field(const std::string& text, std::string_view key) {
  size_t at = 0;
  for (;;) {
    at = text.find(key, at);
    if (at == std::string::npos) return std::nullopt;
    if (at == 0 || text[at - 1] == '\n') break;
    ++at;
  }
  size_t start = at + key.size();
  size_t end = text.find('\n', start);
  std::string value = text.substr(start, end == std::string::npos ? end : end - start);
  value.erase(0, value.find_first_not_of(" \t"));
  return value;
}

// "" or what is wrong with the fdinfo of one kind of file.
std::string CheckEventfd() {
  Fd fd(eventfd(13, EFD_CLOEXEC));
  if (!fd.valid()) return ErrnoText("eventfd", errno);
  std::optional<std::string> info = FdInfo(fd.get());
  std::optional<std::string> count = info ? Field(*info, "eventfd-count:") : std::nullopt;
  if (!count) return "eventfd fdinfo has no eventfd-count";
  if (strtoull(count->c_str(), nullptr, 16) != 13) return "eventfd fdinfo shows another count";
  return "";
}

std::string CheckEpoll() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return ErrnoText("pipe2", errno);
  Fd r(p[0]), w(p[1]);
  Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return ErrnoText("epoll_create1", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, r.get(), &ev) != 0) return ErrnoText("epoll_ctl", errno);
  std::optional<std::string> info = FdInfo(ep.get());
  std::optional<std::string> tfd = info ? Field(*info, "tfd:") : std::nullopt;
  if (!tfd) return "epoll fdinfo has no tfd";
  if (atoi(tfd->c_str()) != r.get()) return "epoll fdinfo shows another target fd";
  return "";
}

std::string CheckSignalfd() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR1);
  Fd fd(signalfd(-1, &mask, SFD_CLOEXEC));
  if (!fd.valid()) return ErrnoText("signalfd", errno);
  std::optional<std::string> info = FdInfo(fd.get());
  std::optional<std::string> sigs = info ? Field(*info, "sigmask:") : std::nullopt;
  if (!sigs) return "signalfd fdinfo has no sigmask";
  if (strtoull(sigs->c_str(), nullptr, 16) != (uint64_t{1} << (SIGUSR1 - 1))) {
    return "signalfd fdinfo shows another mask";
  }
  return "";
}

std::string CheckInotify() {
  Fd fd(inotify_init1(IN_CLOEXEC));
  if (!fd.valid()) return ErrnoText("inotify_init1", errno);
  int wd = inotify_add_watch(fd.get(), "/", IN_CREATE);
  if (wd < 0) return ErrnoText("inotify_add_watch /", errno);
  std::optional<std::string> info = FdInfo(fd.get());
  std::optional<std::string> line = info ? Field(*info, "inotify wd:") : std::nullopt;
  if (!line) return "inotify fdinfo has no watch";
  if (strtol(line->c_str(), nullptr, 16) != wd) return "inotify fdinfo shows another watch";
  return "";
}

}  // namespace

Result ProbeFdinfoExt() {
  for (auto check : {CheckEventfd, CheckEpoll, CheckSignalfd, CheckInotify}) {
    std::string err = check();
    if (!err.empty()) return Fail(err);
  }
  return Ok("eventfd, epoll, signalfd and inotify state shown");
}

Result ProbeMntId() {
  Fd fd(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return FailErrno("open /", errno);
  std::optional<std::string> info = FdInfo(fd.get());
  if (!info) return FailErrno("/proc/self/fdinfo", errno);
  std::optional<std::string> id = Field(*info, "mnt_id:");
  if (!id) return Fail("fdinfo has no mnt_id field");
  struct statx stx {};
  if (statx(fd.get(), "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) == 0 &&
      (stx.stx_mask & STATX_MNT_ID) && stx.stx_mnt_id != strtoull(id->c_str(), nullptr, 10)) {
    return Fail("fdinfo mnt_id differs from statx()'s");
  }
  return Ok("mnt_id " + *id);
}

Result ProbeFdinfoLock() {
  Fd fd(static_cast<int>(syscall(SYS_memfd_create, "crpp-kerndat-lock", MFD_CLOEXEC)));
  if (!fd.valid()) return FailErrno("memfd_create", errno);
  if (flock(fd.get(), LOCK_SH) != 0) return FailErrno("flock", errno);
  std::optional<std::string> info = FdInfo(fd.get());
  if (!info) return FailErrno("/proc/self/fdinfo", errno);
  std::optional<std::string> lock = Field(*info, "lock:");
  if (!lock) return Fail("fdinfo has no lock field");
  return Ok();
}

Result ProbeTimerfd() {
  Fd fd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
  if (!fd.valid()) return FailErrno("timerfd_create", errno);
  itimerspec spec{{100, 0}, {100, 0}};
  if (timerfd_settime(fd.get(), 0, &spec, nullptr) != 0) return FailErrno("timerfd_settime", errno);
  uint64_t ticks = 3;
  if (ioctl(fd.get(), TFD_IOC_SET_TICKS, &ticks) != 0) return FailErrno("TFD_IOC_SET_TICKS", errno);
  std::optional<std::string> info = FdInfo(fd.get());
  if (!info) return FailErrno("/proc/self/fdinfo", errno);
  std::optional<std::string> shown = Field(*info, "ticks:");
  if (!shown || !Field(*info, "it_value:") || !Field(*info, "clockid:")) {
    return Fail("timerfd fdinfo lacks clockid/ticks/it_value");
  }
  if (strtoull(shown->c_str(), nullptr, 10) != 3) return Fail("fdinfo does not show the ticks set");
  return Ok();
}

Result ProbeTty() {
  Fd master(open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) return FailErrno("/dev/ptmx", errno);
  int lock = 1;
  if (ioctl(master.get(), TIOCSPTLCK, &lock) != 0) return FailErrno("TIOCSPTLCK", errno);
  int index = -1;
  if (ioctl(master.get(), TIOCGPTN, &index) != 0) return FailErrno("TIOCGPTN", errno);
  int got = -1;
  if (ioctl(master.get(), TIOCGPTLCK, &got) != 0) return FailErrno("TIOCGPTLCK", errno);
  if (got != 1) return Fail("TIOCGPTLCK does not show the lock");
  // A locked pty must refuse its slave side.
  Fd slave(ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (slave.valid()) return Fail("opened the slave of a locked pty");
  if (errno != EIO) return FailErrno("opening the slave of a locked pty", errno);
  return Ok(absl::StrCat("pty lock state read back (pts ", index, ")"));
}

Result ProbePosixTimers() {
  sigevent sev{};
  sev.sigev_notify = SIGEV_NONE;
  int id = -1;
  if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id) != 0) {
    return FailErrno("timer_create", errno);
  }
  std::optional<std::string> timers = ReadFile("/proc/self/timers");
  int err = errno;
  syscall(SYS_timer_delete, id);
  if (!timers) return FailErrno("/proc/self/timers", err);
  if (timers->find(absl::StrCat("ID: ", id, "\n")) == std::string::npos) {
    return Fail("/proc/self/timers does not list a new timer");
  }
  return Ok();
}

Result ProbeLoginuid() {
  std::optional<std::string> now = ReadFile("/proc/self/loginuid");
  if (!now) return FailErrno("/proc/self/loginuid (CONFIG_AUDITSYSCALL?)", errno);
  // Unset it and put it back, in a child so that ours never changes.
  std::string saved = now->substr(0, now->find('\n'));
  return InChild([&saved]() -> Result {
    for (const std::string& value : {std::string("4294967295"), saved}) {
      Fd fd(open("/proc/self/loginuid", O_WRONLY | O_CLOEXEC));
      if (!fd.valid()) return FailErrno("/proc/self/loginuid", errno);
      if (write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
        return FailErrno("writing " + value + " to /proc/self/loginuid", errno);
      }
    }
    return Ok("loginuid " + saved + " unset and restored");
  });
}

Result ProbeFcntlOwnerUids() {
  Fd fd(open("/proc/self/comm", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return FailErrno("/proc/self/comm", errno);
  uint32_t uids[2] = {};
  if (fcntl(fd.get(), F_GETOWNER_UIDS, uids) != 0) return FailErrno("F_GETOWNER_UIDS", errno);
  return Ok();
}

Result ProbeProcStat() {
  std::optional<std::string> stat = ReadFile("/proc/self/stat");
  if (!stat) return FailErrno("/proc/self/stat", errno);
  size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return Fail("unparsable /proc/self/stat");
  int fields = 2;  // pid and comm
  bool in_field = false;
  for (size_t i = paren + 1; i < stat->size(); ++i) {
    bool blank = (*stat)[i] == ' ' || (*stat)[i] == '\n';
    if (!blank && !in_field) ++fields;
    in_field = !blank;
  }
  // Fields 45..52 (arg/env/data bounds, exit code) are what restore needs.
  if (fields < 52) return Fail(absl::StrCat("/proc/self/stat has ", fields, " fields, want 52"));
  return Ok(absl::StrCat(fields, " fields"));
}

Result ProbeIpcSysctls() {
  for (const char* name : {"sem_next_id", "msg_next_id", "shm_next_id"}) {
    std::string path = absl::StrCat("/proc/sys/kernel/", name);
    if (access(path.c_str(), R_OK | W_OK) != 0) return FailErrno(path, errno);
  }
  return Ok("sem/msg/shm_next_id writable");
}

}  // namespace crpp::kerndat::internal
