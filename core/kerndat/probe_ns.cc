// Probes of the namespaces: /proc/self/ns/<type> is there, and unshare() of
// the type works in a forked child (retried inside a new user namespace when
// plain unshare() is refused).
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace crpp::kerndat::internal {
namespace {

struct NsType {
  const char* name;          // /proc/self/ns/<name>
  int flag;                  // CLONE_NEW*
  const char* changed_link;  // the link unshare() changes for the caller
};

ino_t LinkInode(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Extra checks run in the child after unshare(); "" or what went wrong.
using AfterUnshare = std::string (*)();

std::string FirstChildIsInit() {
  pid_t pid = fork();
  if (pid < 0) return ErrnoText("fork", errno);
  if (pid == 0) _exit(getpid() == 1 ? 0 : 1);
  int status = ReapChild(pid, 5000);
  if (!WIFEXITED(status)) return "the first child of the namespace " + DescribeWaitStatus(status);
  return WEXITSTATUS(status) == 0 ? "" : "the first child of the namespace is not pid 1";
}

std::string SetTimeOffsets() {
  Fd fd(open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoText("/proc/self/timens_offsets", errno);
  const char line[] = "monotonic 1000 0\n";
  if (write(fd.get(), line, sizeof(line) - 1) != static_cast<ssize_t>(sizeof(line) - 1)) {
    return ErrnoText("writing /proc/self/timens_offsets", errno);
  }
  return "";
}

std::string MmMapSize() {
  unsigned int size = 0;
  if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) != 0) {
    return ErrnoText("prctl(PR_SET_MM_MAP_SIZE)", errno);
  }
  return "";
}

Result ProbeNamespace(const NsType& ns, AfterUnshare after = nullptr) {
  const std::string link = absl::StrCat("/proc/self/ns/", ns.name);
  char target[64] = {};
  ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0) return FailErrno(link, errno);
  const std::string changed = absl::StrCat("/proc/self/ns/", ns.changed_link);
  const ino_t before = LinkInode(changed);
  if (before == 0) return FailErrno(changed, errno);

  Result r = InChild([&]() -> Result {
    bool in_userns = false;
    std::string err = UnshareWithFallback(ns.flag, &in_userns);
    if (!err.empty()) return Fail(err);
    // First the extra checks: pid_for_children only resolves once the new
    // namespace has its init.
    if (after != nullptr) {
      err = after();
      if (!err.empty()) return Fail(err);
    }
    ino_t now = LinkInode(changed);
    if (now == 0) return FailErrno(changed + " after unshare()", errno);
    if (now == before) return Fail(changed + " did not change after unshare()");
    return Ok(in_userns ? "unshare() works inside a new user namespace" : "unshare() works");
  });
  if (!r.ok) return r;
  return Ok(absl::StrCat(absl::string_view(target, static_cast<size_t>(n)), ", ", r.detail));
}

}  // namespace

Result ProbeUserns() {
  // criu also wants the all-at-once PR_SET_MM_MAP form to restore in a userns.
  std::string err = MmMapSize();
  if (!err.empty()) return Fail(err);
  return ProbeNamespace({"user", CLONE_NEWUSER, "user"});
}

Result ProbePidns() {
  return ProbeNamespace({"pid", CLONE_NEWPID, "pid_for_children"}, FirstChildIsInit);
}

Result ProbeNetns() { return ProbeNamespace({"net", CLONE_NEWNET, "net"}); }
Result ProbeMntns() { return ProbeNamespace({"mnt", CLONE_NEWNS, "mnt"}); }
Result ProbeIpcns() { return ProbeNamespace({"ipc", CLONE_NEWIPC, "ipc"}); }
Result ProbeUtsns() { return ProbeNamespace({"uts", CLONE_NEWUTS, "uts"}); }
Result ProbeCgroupns() { return ProbeNamespace({"cgroup", CLONE_NEWCGROUP, "cgroup"}); }

Result ProbeTimens() {
  return ProbeNamespace({"time", CLONE_NEWTIME, "time_for_children"}, SetTimeOffsets);
}

}  // namespace crpp::kerndat::internal
