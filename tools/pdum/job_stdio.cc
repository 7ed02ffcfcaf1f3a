#include "tools/pdum/job_stdio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "fdinfo.pb.h"
#include "pstree.pb.h"
#include "resources/files/fds.h"
#include "tools/pdum/console.h"

namespace crpp::pdum {
namespace {

constexpr const char* kStdioName[] = {"stdin", "stdout", "stderr"};

// A path of a character device that is a terminal, as the dump recorded it.
bool IsTerminalPath(const std::string& p) {
  return p.starts_with("/dev/pts/") || p.starts_with("/dev/tty") || p == "/dev/console" ||
         p == "/dev/ptmx";
}

bool IsTerminal(const criu::file_entry& f) {
  if (f.type() == criu::TTY) return true;  // criu's own images
  return f.type() == criu::REG && f.has_reg() && f.reg().has_mode() && S_ISCHR(f.reg().mode()) &&
         IsTerminalPath(f.reg().name());
}

}  // namespace

absl::StatusOr<FrozenJob> ReadFrozenJob(const std::string& dir) {
  auto tree = images::ReadAll<criu::pstree_entry>(dir + "/pstree.img", images::Pstree());
  if (!tree.ok()) return tree.status();
  if (tree->empty()) return absl::DataLossError(dir + "/pstree.img: no process in it");
  FrozenJob job;
  job.pid = static_cast<pid_t>(tree->front().pid());
  job.pgid = static_cast<pid_t>(tree->front().pgid());
  job.sid = static_cast<pid_t>(tree->front().sid());
  auto fds = resources::ReadTaskFdinfo(dir, job.pid);
  if (!fds.ok()) return fds.status();
  auto files = images::ReadAll<criu::file_entry>(dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();

  // The access modes the job held of each pipe: both means the pipe is its own.
  std::map<uint32_t, std::set<uint32_t>> modes;
  std::map<uint32_t, const criu::file_entry*> by_id;
  for (const criu::file_entry& f : *files) {
    by_id[f.id()] = &f;
    if (f.type() == criu::PIPE && f.has_pipe()) {
      modes[f.pipe().pipe_id()].insert(f.pipe().flags() & O_ACCMODE);
    }
    if (job.terminal.empty() && IsTerminal(f)) {
      job.terminal = f.has_reg() ? f.reg().name() : "a terminal";
    }
  }
  for (const criu::fdinfo_entry& fe : *fds) {
    if (fe.fd() > 2) continue;
    StdioSlot& slot = job.stdio[fe.fd()];
    slot.kind = StdioKind::kOther;
    auto it = by_id.find(fe.id());
    if (it == by_id.end()) continue;
    const criu::file_entry& f = *it->second;
    if (f.has_reg()) slot.path = f.reg().name();
    if (IsTerminal(f)) {
      slot.kind = StdioKind::kTerminal;
    } else if (f.type() == criu::PIPE && f.has_pipe() && modes[f.pipe().pipe_id()].size() == 1) {
      slot.kind = StdioKind::kOutsidePipe;
      slot.pipe_id = f.pipe().pipe_id();
      slot.job_reads = (f.pipe().flags() & O_ACCMODE) == O_RDONLY;
    }
  }
  return job;
}

StdioHandover::~StdioHandover() {
  for (const InheritFd& in : inherit) close(in.fd);
}

absl::StatusOr<std::unique_ptr<StdioHandover>> HandOverStdio(
    const FrozenJob& job, const std::array<std::string, 3>& paths) {
  auto out = std::make_unique<StdioHandover>();
  std::map<uint32_t, int> taken;  // pipe inode -> the stdio number that replaced it
  for (int n = 0; n < 3; ++n) {
    const StdioSlot& slot = job.stdio[n];
    const std::string& path = paths[n];
    if (slot.kind != StdioKind::kOutsidePipe) {
      if (!path.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "--%s %s: the job's %s was %s, not a pipe to a process outside it; only such pipes "
            "are handed over",
            kStdioName[n], path, kStdioName[n],
            slot.kind == StdioKind::kUnused ? "closed"
            : slot.path.empty()             ? "restored as it was"
                                            : slot.path));
      }
      continue;
    }
    const std::string resource = absl::StrFormat("pipe:[%d]", slot.pipe_id);
    if (auto t = taken.find(slot.pipe_id); t != taken.end()) {
      if (!path.empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("--%s %s: the job's %s and %s were one pipe (%s); they stay one",
                            kStdioName[n], path, kStdioName[t->second], kStdioName[n], resource));
      }
      out->described.push_back(absl::StrFormat("%s (%s) <- the same as %s", kStdioName[n], resource,
                                               kStdioName[t->second]));
      continue;
    }
    const int mode = slot.job_reads ? O_RDONLY : O_WRONLY;
    int fd = -1;
    bool ours_as_is = false;  // our own fd n, with the right mode already
    std::string source;
    if (!path.empty()) {
      const int flags = slot.job_reads ? O_RDONLY : O_WRONLY | O_CREAT | O_APPEND;
      fd = open(path.c_str(), flags | O_NOCTTY | O_CLOEXEC, 0644);
      if (fd < 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("--%s %s: cannot open it: %s", kStdioName[n], path, strerror(errno)));
      }
      source = path;
    } else {
      const int ours = fcntl(n, F_GETFL);
      if (ours < 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "the job's %s was a pipe (%s), and thaw's own %s is closed: name a file with --%s",
            kStdioName[n], resource, kStdioName[n], kStdioName[n]));
      }
      ours_as_is = (ours & O_ACCMODE) == mode;
      if (ours_as_is) {
        fd = fcntl(n, F_DUPFD_CLOEXEC, 3);
      } else {
        // A terminal (read-write) or the wrong end: a description of the
        // same file with the pipe end's mode, as /proc/self/fd gives it.
        fd = open(absl::StrFormat("/proc/self/fd/%d", n).c_str(), mode | O_NOCTTY | O_CLOEXEC);
      }
      if (fd < 0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "the job's %s was a pipe (%s); thaw's own %s cannot stand for it "
            "(%s): name a file with --%s",
            kStdioName[n], resource, kStdioName[n], strerror(errno), kStdioName[n]));
      }
      source = absl::StrFormat("thaw's %s", kStdioName[n]);
    }
    out->inherit.push_back({fd, resource});
    taken[slot.pipe_id] = n;
    // criu restore takes the same fd as an inherited one: our fd n as it
    // is, else a redirection opening it.
    const int criu_fd = ours_as_is ? n : 3 + static_cast<int>(out->redirections.size());
    out->criu_args.push_back("--inherit-fd");
    out->criu_args.push_back(absl::StrFormat("fd[%d]:%s", criu_fd, resource));
    if (!ours_as_is) {
      const std::string file = path.empty() ? absl::StrFormat("/proc/%d/fd/%d", getpid(), n) : path;
      out->redirections.push_back(
          absl::StrFormat("%d%s%s", criu_fd, slot.job_reads ? "<" : ">>", ShellQuote(file)));
    }
    out->described.push_back(absl::StrFormat("%s (%s) <- %s", kStdioName[n], resource, source));
  }
  return out;
}

}  // namespace crpp::pdum
