// Probes of assorted interfaces: kcmp, the xsave area size, seccomp, openat2,
// PR_SET_MM_MAP, and the mount API bits (move_mount set-group, autofs).
#include <elf.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "arch/x86_64/xsave.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

namespace crpp::kerndat::internal {
namespace {

long Kcmp(pid_t pid, int type, unsigned long a, unsigned long b) {
  return syscall(SYS_kcmp, pid, pid, type, a, b);
}

// The mountinfo line whose mount point is `path`, or "".
std::string MountinfoLine(const std::string& path) {
  std::optional<std::string> info = ReadFile("/proc/self/mountinfo");
  if (!info) return "";
  for (absl::string_view line : absl::StrSplit(*info, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() > 4 && f[4] == path) return std::string(line);
  }
  return "";
}

// The "shared:N" tag of a mountinfo line, or "".
std::string SharedTag(const std::string& line) {
  for (absl::string_view f : absl::StrSplit(line, ' ')) {
    if (absl::StartsWith(f, "shared:")) return std::string(f);
  }
  return "";
}

// Runs `body(dir)` in a child that has its own mount namespace, with a
// scratch directory made (and removed) by the caller.
Result InPrivateMountNs(Result (*body)(const std::string& dir)) {
  std::string dir = ScratchDir() + "/crpp-kerndat-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) return FailErrno("mkdtemp in " + ScratchDir(), errno);
  Result r = InChild([&]() -> Result {
    bool in_userns = false;
    std::string err = UnshareWithFallback(CLONE_NEWNS, &in_userns);
    if (!err.empty()) return Fail("cannot make a mount namespace to try it in: " + err);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return FailErrno("making / private", errno);
    }
    return body(dir);
  });
  rmdir(dir.c_str());
  return r;
}

Result SetGroupBody(const std::string& dir) {
  if (mount("crpp", dir.c_str(), "tmpfs", 0, "size=64k") != 0)
    return FailErrno("mount tmpfs", errno);
  // The target must be a private mount of the same superblock, rooted inside
  // the source: a bind mount of a subdirectory of it.
  const std::string a = dir + "/a", b = dir + "/b", sub = a + "/sub";
  if (mkdir(a.c_str(), 0700) != 0 || mkdir(b.c_str(), 0700) != 0) return FailErrno("mkdir", errno);
  if (mount("crpp-a", a.c_str(), "tmpfs", 0, "size=64k") != 0)
    return FailErrno("mount tmpfs", errno);
  if (mkdir(sub.c_str(), 0700) != 0) return FailErrno("mkdir", errno);
  if (mount(sub.c_str(), b.c_str(), nullptr, MS_BIND, nullptr) != 0)
    return FailErrno("bind mount", errno);
  if (mount(nullptr, a.c_str(), nullptr, MS_SHARED, nullptr) != 0)
    return FailErrno("MS_SHARED", errno);
  if (syscall(SYS_move_mount, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), MOVE_MOUNT_SET_GROUP) !=
      0) {
    return FailErrno("move_mount(MOVE_MOUNT_SET_GROUP)", errno);
  }
  std::string tag_a = SharedTag(MountinfoLine(a)), tag_b = SharedTag(MountinfoLine(b));
  if (tag_a.empty() || tag_a != tag_b) return Fail("the target did not join the peer group");
  return Ok("peer group copied (" + tag_b + ")");
}

Result AutofsBody(const std::string& dir) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return FailErrno("pipe2", errno);
  Fd r(p[0]), w(p[1]);
  // autofs wants the daemon's process group as seen from here: lead our own
  // (in a PID namespace the inherited group may be invisible, i.e. 0).
  if (setpgid(0, 0) != 0) return FailErrno("setpgid", errno);
  std::string opts =
      absl::StrFormat("fd=%d,pgrp=%d,minproto=5,maxproto=5,direct", w.get(), getpgrp());
  if (mount("crpp", dir.c_str(), "autofs", 0, opts.c_str()) != 0)
    return FailErrno("mount autofs", errno);
  std::string line = MountinfoLine(dir);
  if (line.find("pipe_ino=") == std::string::npos)
    return Fail("autofs mount options lack pipe_ino");
  return Ok("pipe_ino shown in mountinfo");
}

}  // namespace

Result ProbeKcmp() {
  Fd a(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Fd c(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!a.valid() || !c.valid()) return FailErrno("open /", errno);
  Fd b(fcntl(a.get(), F_DUPFD_CLOEXEC, 0));
  if (!b.valid()) return FailErrno("dup", errno);
  const pid_t self = getpid();
  long same = Kcmp(self, KCMP_FILE, a.get(), b.get());
  if (same < 0) return FailErrno("kcmp(KCMP_FILE)", errno);
  long other = Kcmp(self, KCMP_FILE, a.get(), c.get());
  if (same != 0 || other <= 0) return Fail("kcmp(KCMP_FILE) does not tell files apart");
  return Ok();
}

Result ProbeKcmpEpoll() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return FailErrno("pipe2", errno);
  Fd r(p[0]), w(p[1]);
  Fd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return FailErrno("epoll_create1", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, r.get(), &ev) != 0) return FailErrno("epoll_ctl", errno);
  kcmp_epoll_slot slot{static_cast<uint32_t>(ep.get()), static_cast<uint32_t>(r.get()), 0};
  long res = Kcmp(getpid(), KCMP_EPOLL_TFD, r.get(), reinterpret_cast<unsigned long>(&slot));
  if (res < 0) return FailErrno("kcmp(KCMP_EPOLL_TFD)", errno);
  if (res != 0) return Fail("kcmp(KCMP_EPOLL_TFD) does not match the watched file");
  return Ok();
}

Result ProbeXsaveSize() {
#if defined(__x86_64__)
  auto layout = arch::ReadXsaveLayout();
  if (!layout.ok()) return Fail(std::string(layout.status().message()));
  const unsigned enabled_size = layout->enabled_size, max_size = layout->max_size;
  const uint64_t xcr0 = layout->xcr0;
  // What dump reads must fit: the kernel's ptrace view of a task's xstate.
  TracedChild child;
  std::string err = child.Start();
  if (!err.empty()) return Fail("cannot cross-check with ptrace: " + err);
  std::vector<uint64_t> buf(64 * 1024 / sizeof(uint64_t));
  iovec iov{buf.data(), buf.size() * sizeof(uint64_t)};
  if (ptrace(PTRACE_GETREGSET, child.pid(), NT_X86_XSTATE, &iov) != 0) {
    return FailErrno("PTRACE_GETREGSET(NT_X86_XSTATE)", errno);
  }
  if (iov.iov_len != enabled_size) {
    return Fail(
        absl::StrFormat("CPUID 0xD says %u bytes but ptrace gives %u", enabled_size, iov.iov_len));
  }
  return Ok(
      absl::StrFormat("%u bytes (XCR0 %#x, all features %u bytes)", enabled_size, xcr0, max_size));
#else
  return Fail("only probed on x86");
#endif
}

Result ProbeSeccomp() {
  const int own_mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
  Result r = InChild([]() -> Result {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EXDEV),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return FailErrno("PR_SET_NO_NEW_PRIVS", errno);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
      return FailErrno("PR_SET_SECCOMP(SECCOMP_MODE_FILTER)", errno);
    }
    if (syscall(SYS_getppid) != -1 || errno != EXDEV) return Fail("the filter did not act");
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != SECCOMP_MODE_FILTER) {
      return Fail("PR_GET_SECCOMP does not report the filter mode");
    }
    return Ok();
  });
  if (!r.ok) return r;
  return Ok(absl::StrCat("filters act; this process runs in seccomp mode ", own_mode));
}

Result ProbeOpenat2() {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_MAGICLINKS;
  Fd root(static_cast<int>(syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how))));
  if (!root.valid()) return FailErrno("openat2 /", errno);
  Fd exe(static_cast<int>(syscall(SYS_openat2, AT_FDCWD, "/proc/self/exe", &how, sizeof(how))));
  if (exe.valid()) return Fail("RESOLVE_NO_MAGICLINKS let /proc/self/exe through");
  if (errno != ELOOP && errno != ENOENT) return FailErrno("openat2 /proc/self/exe", errno);
  return Ok();
}

Result ProbePrctlMmMap() {
  unsigned int* tid_address = nullptr;
  if (prctl(PR_GET_TID_ADDRESS, &tid_address, 0, 0, 0) != 0)
    return FailErrno("PR_GET_TID_ADDRESS", errno);
  unsigned int size = 0;
  if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) != 0) {
    return FailErrno("PR_SET_MM_MAP_SIZE", errno);
  }
  if (size != sizeof(prctl_mm_map))
    return Fail(absl::StrCat("kernel's prctl_mm_map is ", size, " bytes"));
  // Set the current layout again, all at once, as the restorer does.
  return InChild([]() -> Result {
    std::optional<std::string> stat = ReadFile("/proc/self/stat");
    std::optional<std::string> auxv = ReadFile("/proc/self/auxv");
    if (!stat || !auxv) return FailErrno("/proc/self/stat or auxv", errno);
    std::vector<absl::string_view> f =
        absl::StrSplit(absl::string_view(*stat).substr(stat->rfind(')') + 2), ' ');
    if (f.size() < 50) return Fail("short /proc/self/stat");
    // f[i] is field i + 3 of proc(5).
    auto field = [&](int n) { return strtoull(std::string(f[n - 3]).c_str(), nullptr, 10); };
    std::vector<uint64_t> saved_auxv((auxv->size() + 7) / 8);
    memcpy(saved_auxv.data(), auxv->data(), auxv->size());
    prctl_mm_map map{};
    map.start_code = field(26);
    map.end_code = field(27);
    map.start_stack = field(28);
    map.start_data = field(45);
    map.end_data = field(46);
    map.start_brk = field(47);
    map.brk = static_cast<uint64_t>(syscall(SYS_brk, 0));
    map.arg_start = field(48);
    map.arg_end = field(49);
    map.env_start = field(50);
    map.env_end = field(51);
    map.auxv = reinterpret_cast<__u64*>(saved_auxv.data());
    map.auxv_size = static_cast<uint32_t>(saved_auxv.size() * sizeof(uint64_t));
    map.exe_fd = static_cast<uint32_t>(-1);
    if (prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof(map), 0) != 0) {
      return FailErrno("PR_SET_MM_MAP", errno);
    }
    return Ok("PR_SET_MM_MAP accepts the current layout");
  });
}

Result ProbeMoveMountSetGroup() { return InPrivateMountNs(SetGroupBody); }

Result ProbeAutofs() { return InPrivateMountNs(AutofsBody); }

}  // namespace crpp::kerndat::internal
