#include "tools/criu_ns/namespaces.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace crpp::criu_ns {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

// The value of an option without removing it ("" if absent).
std::string Peek(std::vector<std::string> args, const std::string& long_name,
                 const std::string& short_name) {
  auto v = TakeOption(args, long_name, short_name);
  return v.ok() ? *v : "";
}

// The NSpid line of /proc/PID/status: its pid in each namespace, outermost first.
absl::StatusOr<std::vector<pid_t>> NsPids(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    std::vector<pid_t> pids;
    for (absl::string_view f :
         absl::StrSplit(line.substr(6), absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      pid_t p = 0;
      if (!absl::SimpleAtoi(f, &p)) break;
      pids.push_back(p);
    }
    if (!pids.empty()) return pids;
  }
  return absl::NotFoundError(absl::StrFormat("pid %d: no such process (no NSpid)", pid));
}

bool SameNamespace(pid_t pid, const char* ns) {
  struct stat mine, theirs;
  return stat(absl::StrFormat("/proc/self/ns/%s", ns).c_str(), &mine) == 0 &&
         stat(absl::StrFormat("/proc/%d/ns/%s", pid, ns).c_str(), &theirs) == 0 &&
         mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

}  // namespace

absl::StatusOr<std::string> TakeOption(std::vector<std::string>& args, const std::string& long_name,
                                       const std::string& short_name) {
  std::string value;
  for (size_t i = 0; i < args.size();) {
    const std::string& a = args[i];
    size_t take = 0;
    if (a == long_name || (!short_name.empty() && a == short_name)) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(a + " needs a value");
      }
      value = args[i + 1];
      take = 2;
    } else if (a.rfind(long_name + "=", 0) == 0) {
      value = a.substr(long_name.size() + 1);
      take = 1;
    } else if (!short_name.empty() && a.size() > short_name.size() && a.rfind(short_name, 0) == 0 &&
               a[1] != '-') {
      value = a.substr(short_name.size());
      take = 1;
    }
    if (take == 0) {
      ++i;
      continue;
    }
    args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i + take));
  }
  return value;
}

std::string ResolvePidfile(const std::vector<std::string>& args, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  std::string base = Peek(args, "--work-dir", "-W");
  if (base.empty()) base = Peek(args, "--images-dir", "-D");
  std::error_code ec;
  std::filesystem::path p =
      base.empty() ? std::filesystem::path(path) : std::filesystem::path(base) / path;
  auto abs = std::filesystem::absolute(p, ec);
  return ec ? p.string() : abs.string();
}

absl::StatusOr<pid_t> ReadPid(int fd) {
  char buf[32];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return absl::AbortedError("criu wrote no pid: the restore failed");
  buf[n] = '\0';
  pid_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(buf), &pid) || pid <= 0) {
    return absl::DataLossError(absl::StrFormat("criu wrote '%s' as the pid", buf));
  }
  return pid;
}

absl::StatusOr<pid_t> OuterPid(pid_t parent, pid_t inner) {
  std::ifstream in(absl::StrFormat("/proc/%d/task/%d/children", parent, parent));
  pid_t child = 0;
  while (in >> child) {
    auto pids = NsPids(child);
    if (pids.ok() && pids->back() == inner) return pids->front();
  }
  return absl::NotFoundError(
      absl::StrFormat("the restored pid %d is no child of criu (pid %d) any more: it ended already",
                      inner, parent));
}

absl::Status WritePidfile(const std::string& path, pid_t pid) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot write the pidfile " + path);
  const std::string text = std::to_string(pid);
  ssize_t n = write(fd, text.data(), text.size());
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) return Errno("cannot write the pidfile " + path);
  return absl::OkStatus();
}

absl::StatusOr<pid_t> EnterNamespacesOf(pid_t pid) {
  auto pids = NsPids(pid);
  if (!pids.ok()) return pids.status();
  const bool same_pid_ns = SameNamespace(pid, "pid");
  const bool same_mnt_ns = SameNamespace(pid, "mnt");
  if (same_pid_ns && same_mnt_ns) return pid;
  // Both opened before either is joined: the mount namespace decides what
  // /proc shows.
  int pid_ns = open(absl::StrFormat("/proc/%d/ns/pid", pid).c_str(), O_RDONLY | O_CLOEXEC);
  int mnt_ns = open(absl::StrFormat("/proc/%d/ns/mnt", pid).c_str(), O_RDONLY | O_CLOEXEC);
  absl::Status s;
  if (pid_ns < 0 || mnt_ns < 0) s = Errno(absl::StrFormat("pid %d: opening its namespaces", pid));
  if (s.ok() && !same_pid_ns && setns(pid_ns, CLONE_NEWPID) != 0) {
    s = Errno(absl::StrFormat("pid %d: joining its pid namespace", pid));
  }
  if (s.ok() && !same_mnt_ns) {
    std::error_code ec;
    auto cwd = std::filesystem::current_path(ec);
    if (setns(mnt_ns, CLONE_NEWNS) != 0) {
      s = Errno(absl::StrFormat("pid %d: joining its mount namespace", pid));
    } else if (!ec && chdir(cwd.c_str()) != 0) {
      s = Errno("the current directory " + cwd.string() + " in the mount namespace of the tree");
    }
  }
  if (pid_ns >= 0) close(pid_ns);
  if (mnt_ns >= 0) close(mnt_ns);
  if (!s.ok()) return s;
  return same_pid_ns ? pid : pids->back();
}

absl::Status HoldPidNamespace() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return Errno("pipe");
  pid_t child = fork();
  if (child < 0) return Errno("fork");
  if (child == 0) {
    // The grandchild, an orphan in the namespace, reads until we all exit.
    if (fork() == 0) {
      close(p[1]);
      char c;
      while (read(p[0], &c, 1) < 0 && errno == EINTR) {
      }
      _exit(0);
    }
    _exit(0);
  }
  close(p[0]);
  waitpid(child, nullptr, 0);
  return absl::OkStatus();  // p[1] stays open (close-on-exec) until we exit
}

}  // namespace crpp::criu_ns
