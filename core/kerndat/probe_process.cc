// Probes of the process interfaces: ptrace, clone3(set_tid), pidfds, signals.
#include <elf.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

namespace crpp::kerndat::internal {
namespace {

int BlockSigusr2() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  return sigprocmask(SIG_BLOCK, &set, nullptr) == 0 ? 0 : 3;
}

// Two instructions: load the syscall number, allow everything.
constexpr unsigned short kFilterLen = 2;

int InstallSeccompFilter() {
  sock_filter filter[kFilterLen] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{kFilterLen, filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 4;
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return 5;
  return 0;
}

// The pid clone3() asks for inside the fresh PID namespace.
constexpr pid_t kWantedPid = 123;

}  // namespace

Result ProbePtraceSeize() {
  TracedChild child;
  std::string err = child.Start();
  if (!err.empty()) return Fail(err);
  user_regs_struct regs{};
  iovec iov{&regs, sizeof(regs)};
  if (ptrace(PTRACE_GETREGSET, child.pid(), NT_PRSTATUS, &iov) != 0) {
    return FailErrno("PTRACE_GETREGSET(NT_PRSTATUS)", errno);
  }
  return Ok("seized a child, stopped it with PTRACE_INTERRUPT, read its registers");
}

Result ProbePtracePeeksiginfo() {
  TracedChild child;
  std::string err = child.Start(BlockSigusr2);
  if (!err.empty()) return Fail(err);
  // Queue a blocked signal with a payload and read it back without dequeuing.
  siginfo_t info{};
  info.si_code = SI_QUEUE;
  info.si_pid = getpid();
  info.si_uid = getuid();
  info.si_value.sival_int = 0x5eed;
  if (syscall(SYS_rt_sigqueueinfo, child.pid(), SIGUSR2, &info) != 0) {
    return FailErrno("rt_sigqueueinfo", errno);
  }
  // The signal was sent to the process: it sits in the shared queue.
  __ptrace_peeksiginfo_args args{0, PTRACE_PEEKSIGINFO_SHARED, 1};
  siginfo_t got{};
  long n = ptrace(PTRACE_PEEKSIGINFO, child.pid(), &args, &got);
  if (n < 0) return FailErrno("PTRACE_PEEKSIGINFO", errno);
  if (n != 1 || got.si_signo != SIGUSR2 || got.si_value.sival_int != 0x5eed) {
    return Fail(
        absl::StrFormat("PTRACE_PEEKSIGINFO returned %d entries (signal %d), "
                        "not the queued SIGUSR2",
                        n, got.si_signo));
  }
  uint64_t mask = 0;
  if (ptrace(PTRACE_GETSIGMASK, child.pid(), sizeof(mask), &mask) != 0) {
    return FailErrno("PTRACE_GETSIGMASK", errno);
  }
  if ((mask & (uint64_t{1} << (SIGUSR2 - 1))) == 0) {
    return Fail("PTRACE_GETSIGMASK does not show the blocked SIGUSR2");
  }
  return Ok("pending signal and blocked mask read back");
}

Result ProbeSeccompSuspend() {
  TracedChild child;
  std::string err = child.Start();
  if (!err.empty()) return Fail(err);
  if (ptrace(PTRACE_SETOPTIONS, child.pid(), nullptr, PTRACE_O_SUSPEND_SECCOMP) != 0) {
    return FailErrno("PTRACE_SETOPTIONS(PTRACE_O_SUSPEND_SECCOMP)", errno);
  }
  return Ok();
}

Result ProbeSeccompFilters() {
  TracedChild child;
  std::string err = child.Start(InstallSeccompFilter);
  if (!err.empty()) return Fail(err);
  long len = ptrace(PTRACE_SECCOMP_GET_FILTER, child.pid(), 0, nullptr);
  if (len < 0) return FailErrno("PTRACE_SECCOMP_GET_FILTER", errno);
  if (len != kFilterLen) {
    return Fail(
        absl::StrFormat("read back a filter of %d instructions, installed %d", len, kFilterLen));
  }
  sock_filter insns[kFilterLen] = {};
  if (ptrace(PTRACE_SECCOMP_GET_FILTER, child.pid(), 0, insns) != len) {
    return FailErrno("PTRACE_SECCOMP_GET_FILTER (contents)", errno);
  }
  if (insns[1].code != (BPF_RET | BPF_K) || insns[1].k != SECCOMP_RET_ALLOW) {
    return Fail("the filter read back differs from the one installed");
  }
  return Ok("a child's seccomp filter read back");
}

Result ProbeGetRseqConf() {
  TracedChild child;
  std::string err = child.Start();
  if (!err.empty()) return Fail(err);
  __ptrace_rseq_configuration conf{};
  long n = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, child.pid(), sizeof(conf), &conf);
  if (n < 0) return FailErrno("PTRACE_GET_RSEQ_CONFIGURATION", errno);
  if (conf.rseq_abi_pointer == 0) return Ok("the child has no rseq area registered");
  return Ok(
      absl::StrFormat("rseq area of %u bytes, signature %#x", conf.rseq_abi_size, conf.signature));
}

Result ProbeClone3SetTid() {
  return InChild([]() -> Result {
    bool in_userns = false;
    std::string err = UnshareWithFallback(CLONE_NEWPID, &in_userns);
    if (!err.empty()) return Fail("cannot make a PID namespace to try it in: " + err);
    pid_t init = fork();  // pid 1 of the new namespace
    if (init < 0) return FailErrno("fork", errno);
    if (init == 0) {
      pid_t want = kWantedPid;
      clone_args args{};
      args.exit_signal = SIGCHLD;
      args.set_tid = reinterpret_cast<uintptr_t>(&want);
      args.set_tid_size = 1;
      long pid = syscall(SYS_clone3, &args, sizeof(args));
      if (pid == 0) _exit(0);
      if (pid < 0) _exit(errno < 200 ? errno : 199);
      int status = 0;
      waitpid(static_cast<pid_t>(pid), &status, 0);
      _exit(pid == want ? 0 : 200);
    }
    int status = ReapChild(init, 5000);
    if (!WIFEXITED(status)) return Fail("the namespace's init " + DescribeWaitStatus(status));
    int code = WEXITSTATUS(status);
    if (code == 200) return Fail("clone3() gave another pid than the one asked in set_tid");
    if (code != 0) return FailErrno("clone3(set_tid)", code);
    return Ok(absl::StrCat("got pid ", kWantedPid, " in a new PID namespace",
                           in_userns ? " (inside a new user namespace)" : ""));
  });
}

Result ProbeNsLastPid() {
  const char* path = "/proc/sys/kernel/ns_last_pid";
  std::optional<std::string> value = ReadFile(path);
  if (!value) return FailErrno(path, errno);
  if (access(path, W_OK) != 0) return FailErrno(absl::StrCat(path, " is not writable"), errno);
  return Ok(absl::StrCat("last pid ", value->substr(0, value->find('\n'))));
}

Result ProbePidfdStore() {
  Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  if (!pidfd.valid()) return FailErrno("pidfd_open", errno);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return FailErrno("pipe2", errno);
  Fd r(p[0]), w(p[1]);
  Fd copy(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), r.get(), 0)));
  if (!copy.valid()) return FailErrno("pidfd_getfd", errno);
  struct stat a {
  }, b{};
  if (fstat(r.get(), &a) != 0 || fstat(copy.get(), &b) != 0) return FailErrno("fstat", errno);
  if (a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
    return Fail("pidfd_getfd returned a different file");
  }
  return Ok("pidfd_open and pidfd_getfd work");
}

Result ProbeNsPid() {
  std::optional<std::string> status = ReadFile("/proc/self/status");
  if (!status) return FailErrno("/proc/self/status", errno);
  size_t at = status->find("\nNSpid:");
  if (at == std::string::npos) return Fail("/proc/self/status has no NSpid line");
  size_t start = at + 7;
  size_t end = status->find('\n', start);
  std::string value = status->substr(start, end - start);
  value.erase(0, value.find_first_not_of(" \t"));
  for (char& c : value) {
    if (c == '\t') c = ' ';
  }
  return Ok("NSpid: " + value);
}

Result ProbeSigqueueinfo() {
  return InChild([]() -> Result {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return FailErrno("sigprocmask", errno);
    siginfo_t info{};
    info.si_code = 1;  // a positive code, as a restored pending signal may carry
    info.si_value.sival_int = 0xc0de;
    if (syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &info) != 0) {
      return FailErrno("rt_sigqueueinfo to self with si_code > 0", errno);
    }
    timespec zero{0, 0};
    siginfo_t got{};
    if (sigtimedwait(&set, &got, &zero) != SIGUSR1) return FailErrno("sigtimedwait", errno);
    if (got.si_code != 1 || got.si_value.sival_int != 0xc0de) {
      return Fail("the signal came back with another siginfo");
    }
    return Ok();
  });
}

}  // namespace crpp::kerndat::internal
