// criu-ns: runs the criu beside it in other namespaces, as criu-ns(1) does.
//
//   criu-ns restore [criu restore options]   in a new pid and mount namespace,
//       so the tree gets its pids back even where they are taken. criu is the
//       new namespace's init and stays the tree's parent. With -d it returns as
//       soon as the tree runs; --pidfile then holds the root's pid as the
//       caller sees it (not the pid inside the namespace).
//   criu-ns dump -t PID [criu dump options]  in PID's pid and mount namespace
//       (PID as the caller sees it), e.g. a tree restored by criu-ns restore.
//   criu-ns check [...]                       criu check.
//
// The criu run is the one in criu-ns's own directory (not the first one on
// PATH: callers run this under sudo, which resets PATH). Nothing here reads
// the environment.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "tools/criu_ns/namespaces.h"

namespace crpp::criu_ns {
namespace {

int Fail(const std::string& message) {
  fprintf(stderr, "criu-ns: %s\n", message.c_str());
  return 1;
}

// The criu binary beside this one.
std::string CriuBeside() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "criu";
  return (self.parent_path() / "criu").string();
}

[[noreturn]] void ExecCriu(const std::vector<std::string>& args) {
  const std::string criu = CriuBeside();
  std::vector<char*> argv = {const_cast<char*>("criu")};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(criu.c_str(), argv.data());
  fprintf(stderr, "criu-ns: cannot run %s: %s\n", criu.c_str(), strerror(errno));
  _exit(127);
}

// criu's exit status as criu-ns's.
int WaitFor(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Fail(absl::StrFormat("waitpid %d: %s", pid, strerror(errno)));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int Restore(std::vector<std::string> args) {
  bool detached = false;
  for (size_t i = 0; i < args.size();) {
    if (args[i] == "--restore-sibling") {
      return Fail("--restore-sibling is not supported: the tree is restored as criu's children");
    }
    if (args[i] == "-d" || args[i] == "--restore-detached") {
      detached = true;
      args.erase(args.begin() + static_cast<long>(i));
    } else {
      ++i;
    }
  }
  // --pidfile FILE is ours to write, with the pid as the caller sees it:
  // criu writes the pid it sees into a pipe instead.
  auto pidfile = TakeOption(args, "--pidfile", "");
  if (!pidfile.ok()) return Fail(std::string(pidfile.status().message()));
  int pid_pipe[2] = {-1, -1};
  if (!pidfile->empty()) {
    if (pipe2(pid_pipe, O_CLOEXEC) != 0) return Fail(absl::StrFormat("pipe: %s", strerror(errno)));
    args.push_back("--pidfile");
    args.push_back(absl::StrFormat("/proc/self/fd/%d", pid_pipe[1]));
  }
  const std::string pidfile_path = pidfile->empty() ? "" : ResolvePidfile(args, *pidfile);
  // criu-ns itself stays in its mount namespace, to see the tree's pids as
  // the caller does in its /proc.
  if (unshare(CLONE_NEWPID) != 0) {
    return Fail(absl::StrFormat("unshare of the pid namespace: %s", strerror(errno)));
  }
  pid_t criu = fork();  // pid 1 of the new pid namespace
  if (criu < 0) return Fail(absl::StrFormat("fork: %s", strerror(errno)));
  if (criu == 0) {
    setsid();
    if (pid_pipe[1] >= 0) fcntl(pid_pipe[1], F_SETFD, 0);
    // A mount namespace whose /proc is the new pid namespace's; the other
    // mounts stay the caller's (what it mounts later still shows here).
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_SLAVE | MS_REC, nullptr) != 0 ||
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
      fprintf(stderr, "criu-ns: mounting /proc in the new namespace: %s\n", strerror(errno));
      _exit(1);
    }
    args.insert(args.begin(), "restore");
    ExecCriu(args);
  }
  if (pid_pipe[1] >= 0) {
    close(pid_pipe[1]);
    // The pid inside, once the tree runs; nothing if the restore failed.
    auto inner = ReadPid(pid_pipe[0]);
    close(pid_pipe[0]);
    if (!inner.ok()) return WaitFor(criu);
    auto outer = OuterPid(criu, *inner);
    if (!outer.ok()) return Fail(std::string(outer.status().message()));
    if (auto s = WritePidfile(pidfile_path, *outer); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }
  if (detached) return 0;
  return WaitFor(criu);
}

int Dump(std::vector<std::string> args) {
  auto target = TakeOption(args, "--tree", "-t");
  if (!target.ok()) return Fail(std::string(target.status().message()));
  if (target->empty()) return Fail("dump needs -t PID");
  pid_t pid = 0;
  if (!absl::SimpleAtoi(*target, &pid) || pid <= 0) return Fail("-t " + *target + ": not a pid");
  auto inner = EnterNamespacesOf(pid);
  if (!inner.ok()) return Fail(std::string(inner.status().message()));
  args.insert(args.begin(), {"dump", "-t", std::to_string(*inner)});
  // A process of ours in the target's pid namespace until we end: its init
  // (criu-ns restore's criu) then outlives the tree the dump kills.
  if (auto s = HoldPidNamespace(); !s.ok()) return Fail(std::string(s.message()));
  pid_t criu = fork();
  if (criu < 0) return Fail(absl::StrFormat("fork: %s", strerror(errno)));
  if (criu == 0) ExecCriu(args);
  return WaitFor(criu);
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    printf(
        "usage:\n  criu-ns dump|pre-dump -t PID [<options>]\n  criu-ns restore [<options>]\n"
        "  criu-ns check [<options>]\n");
    return args.empty() ? 1 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "restore") return Restore(args);
  if (command == "dump" || command == "pre-dump") {
    if (command == "pre-dump") return Fail("pre-dump is not supported yet");
    return Dump(args);
  }
  if (command == "check") {
    args.insert(args.begin(), "check");
    ExecCriu(args);
  }
  return Fail("unknown command " + command + " (dump, restore or check)");
}

}  // namespace
}  // namespace crpp::criu_ns

int main(int argc, char** argv) { return crpp::criu_ns::Main(argc, argv); }
