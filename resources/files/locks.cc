#include "resources/files/locks.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/strings.h"
#include "file-lock.pb.h"

namespace crpp::resources {
namespace {

// file_lock_entry.flag values (CRIU's).
constexpr uint32_t kPosix = 1, kFlock = 2, kOfd = 4;

const images::ImageKind& LocksKind() { return *images::FindKindByName("FILE_LOCKS"); }

struct Lock {
  uint32_t kind = 0;  // kPosix, kFlock or kOfd
  short type = F_RDLCK;
  int64_t start = 0;
  int64_t end = -1;  // last byte, -1 for "to the end of the file"
  std::string line;  // as fdinfo shows it
};

const char* KindName(uint32_t kind) {
  return kind == kPosix ? "POSIX" : kind == kFlock ? "flock" : kind == kOfd ? "OFD" : "unknown";
}

std::string Describe(uint32_t kind, int type, int64_t start, int64_t len) {
  std::string what =
      absl::StrFormat("%s %s lock", KindName(kind), type == F_WRLCK ? "write" : "read");
  if (kind == kFlock) return what;
  if (len == 0) return absl::StrFormat("%s on bytes %d to the end", what, start);
  return absl::StrFormat("%s on bytes %d to %d", what, start, start + len - 1);
}

std::vector<std::string_view> Words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool ToInt(std::string_view w, int64_t& out) {
  std::string s(w);
  char* end = nullptr;
  errno = 0;
  long long v = strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  out = v;
  return true;
}

// The locks taken through `pid`'s `fd` (its fdinfo "lock:" lines); anything
// but advisory flock, POSIX and OFD locks is refused.
absl::StatusOr<std::vector<Lock>> ReadLocks(pid_t pid, int fd) {
  auto text = proc::ReadFile(absl::StrFormat("/proc/%d/fdinfo/%d", pid, fd));
  if (!text.ok()) return text.status();
  std::vector<Lock> out;
  for (std::string_view line : Split(*text, '\n')) {
    if (!line.starts_with("lock:")) continue;
    // "lock:\t1: POSIX  ADVISORY  WRITE 1234 08:01:5678 100 199"
    std::vector<std::string_view> w = Words(line.substr(5));
    auto bad = [&](const std::string& why) {
      return absl::UnimplementedError(absl::StrFormat("pid %d fd %d holds a lock crpp %s: \"%s\"",
                                                      pid, fd, why, std::string(line)));
    };
    if (w.size() < 8) return bad("cannot read");
    Lock l;
    l.line = std::string(line);
    if (w[1] == "POSIX") {
      l.kind = kPosix;
    } else if (w[1] == "FLOCK") {
      l.kind = kFlock;
    } else if (w[1] == "OFDLCK") {
      l.kind = kOfd;
    } else {
      return bad("does not support (leases and the like)");
    }
    if (w[2] != "ADVISORY") return bad("does not support");
    if (w[3] == "READ") {
      l.type = F_RDLCK;
    } else if (w[3] == "WRITE") {
      l.type = F_WRLCK;
    } else {
      return bad("does not support");
    }
    if (!ToInt(w[6], l.start)) return bad("cannot read");
    if (w[7] == "EOF") {
      l.end = -1;
    } else if (!ToInt(w[7], l.end) || l.end < l.start) {
      return bad("cannot read");
    }
    out.push_back(std::move(l));
  }
  return out;
}

std::string FdPath(pid_t pid, int fd) {
  auto p = proc::ReadLink(absl::StrFormat("/proc/%d/fd/%d", pid, fd));
  return p.ok() ? *p : "?";
}

absl::Status RefuseWithoutOption(pid_t pid, int fd, const std::string& path, const Lock& l) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "pid %d fd %d (%s) holds a %s lock: dump with --file-locks to dump file locks", pid, fd, path,
      KindName(l.kind)));
}

// The inode numbers /proc/locks shows a lock (or a waiter) on. Only fds of
// these inodes can hold a lock, so only theirs need their fdinfo read: one
// read of /proc/locks instead of one fdinfo per fd of the tree. Null if the
// dump driver did not read /proc/locks (DumpContext::ProcLocks: a tree with
// few fds) or could not: every fd is looked at then.
std::unique_ptr<std::set<uint64_t>> LockedInodes(const DumpContext& ctx) {
  auto text = ctx.ProcLocks();
  if (!text.ok()) return nullptr;
  auto inodes = std::make_unique<std::set<uint64_t>>();
  for (std::string_view line : Split(*text, '\n')) {
    // "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (a waiter has "->"
    // before its kind): the inode ends the word MAJ:MIN:INO.
    for (std::string_view w : Words(line)) {
      if (std::count(w.begin(), w.end(), ':') != 2) continue;
      uint64_t ino = 0;
      if (ParseInt(w.substr(w.rfind(':') + 1), ino)) inodes->insert(ino);
    }
  }
  return inodes;
}

// The live tasks whose locks are looked at: the tree's, or the selected task
// in plugin tests.
std::vector<pid_t> LiveTasks(const DumpContext& ctx) {
  std::vector<pid_t> tasks;
  if (ctx.tree.empty()) {
    if (!ctx.zombie) tasks.push_back(ctx.pid);
  } else {
    // POSIX locks belong to the fd table (the kernel's lock owner): a table
    // several tasks share is read once, through its owner, which takes the
    // locks back at restore.
    for (const TreeTask& t : ctx.tree) {
      if (t.owns_fd_table()) tasks.push_back(t.pid);
    }
  }
  return tasks;
}

// Calls FN(pid, fd, its locks) for every fd of the tree that holds a lock;
// without --file-locks the first one refuses the dump.
absl::Status ForEachHeldLock(
    DumpContext& ctx, const std::function<absl::Status(pid_t, int, const std::vector<Lock>&)>& fn) {
  const std::unique_ptr<std::set<uint64_t>> locked = LockedInodes(ctx);
  if (locked != nullptr && locked->empty()) return absl::OkStatus();
  for (pid_t pid : LiveTasks(ctx)) {
    auto fds = ctx.OpenFds(pid);
    if (!fds.ok()) return fds.status();
    for (const DumpContext::OpenFd& open : **fds) {
      if (locked != nullptr && !locked->count(open.st.st_ino)) continue;
      auto locks = ReadLocks(pid, open.fd);
      if (!locks.ok()) return locks.status();
      if (locks->empty()) continue;
      if (!ctx.file_locks) return RefuseWithoutOption(pid, open.fd, open.link, locks->front());
      if (auto s = fn(pid, open.fd, *locks); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FileLocks::Precheck(DumpContext& ctx) {
  // Once for the whole tree, from its root's turn.
  if (!ctx.tree.empty() && ctx.pid != ctx.tree.front().pid) return absl::OkStatus();
  return ForEachHeldLock(ctx,
                         [](pid_t, int, const std::vector<Lock>&) { return absl::OkStatus(); });
}

absl::Status FileLocks::Dump(DumpContext& ctx) {
  if (!ctx.tree.empty() && ctx.pid != ctx.tree.front().pid) return absl::OkStatus();
  // Written even when empty, as CRIU does.
  auto w = images::TypedImageWriter<criu::file_lock_entry>::Create(
      ctx.images_dir + "/filelocks.img", LocksKind());
  if (!w.ok()) return w.status();
  // A lock seen through several fds (dup'ed, or one description shared by
  // several processes) is taken once: flock and OFD locks belong to the
  // description, POSIX locks to the description's process.
  struct Seen {
    pid_t pid;
    int fd;
    Lock lock;
  };
  std::vector<Seen> seen;
  auto already = [&seen](pid_t pid, int fd, const Lock& l) {
    for (const Seen& s : seen) {
      if (s.lock.kind != l.kind || s.lock.type != l.type || s.lock.start != l.start ||
          s.lock.end != l.end || (l.kind == kPosix && s.pid != pid)) {
        continue;
      }
      if (syscall(SYS_kcmp, s.pid, pid, KCMP_FILE, s.fd, fd) == 0) return true;
    }
    return false;
  };
  size_t count = 0;
  auto dumped = ForEachHeldLock(ctx, [&](pid_t pid, int fd, const std::vector<Lock>& locks) {
    for (const Lock& l : locks) {
      if (already(pid, fd, l)) continue;
      seen.push_back({pid, fd, l});
      criu::file_lock_entry e;
      e.set_flag(l.kind);
      e.set_type(static_cast<uint32_t>(l.type));
      e.set_pid(pid);
      e.set_fd(fd);
      e.set_start(l.start);
      e.set_len(l.end < 0 ? 0 : l.end - l.start + 1);
      if (auto s = w->Write(e); !s.ok()) return s;
      ++count;
      log::Info("file-locks: pid %d fd %d: %s", pid, fd,
                Describe(e.flag(), static_cast<int>(e.type()), e.start(), e.len()));
    }
    return absl::OkStatus();
  });
  if (!dumped.ok()) return dumped;
  if (auto s = w->Close(); !s.ok()) return s;
  log::Info("file-locks: %d locks", count);
  return absl::OkStatus();
}

// ---- restore ------------------------------------------------------------------

namespace {

// Takes the lock `e` describes on this process's fd, without waiting.
absl::Status TakeLock(const criu::file_lock_entry& e) {
  const int fd = e.fd();
  const int type = static_cast<int>(e.type());
  const std::string what = Describe(e.flag(), type, e.start(), e.len());
  if (type != F_RDLCK && type != F_WRLCK) {
    return absl::DataLossError(absl::StrFormat("fd %d: a lock of type %d", fd, type));
  }
  if (fcntl(fd, F_GETFD) < 0) {
    return absl::DataLossError(absl::StrFormat("fd %d held a %s, but it is not open", fd, what));
  }
  const std::string path = FdPath(getpid(), fd);
  if (e.flag() == kFlock) {
    if (flock(fd, (type == F_WRLCK ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return absl::OkStatus();
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "fd %d (%s): its %s is held by someone else now: cannot take it back", fd, path, what));
    }
    return absl::InternalError(
        absl::StrFormat("fd %d (%s): taking its %s: %s", fd, path, what, strerror(errno)));
  }
  if (e.flag() != kPosix && e.flag() != kOfd) {
    return absl::UnimplementedError(
        absl::StrFormat("fd %d (%s): a lock of kind %d is not supported", fd, path, e.flag()));
  }
  struct flock fl = {};
  fl.l_type = static_cast<short>(type);
  fl.l_whence = SEEK_SET;
  fl.l_start = e.start();
  fl.l_len = e.len();
  fl.l_pid = 0;
  const bool ofd = e.flag() == kOfd;
  if (fcntl(fd, ofd ? F_OFD_SETLK : F_SETLK, &fl) == 0) return absl::OkStatus();
  if (errno == EAGAIN || errno == EACCES) {
    struct flock who = {};
    who.l_type = static_cast<short>(type);
    who.l_whence = SEEK_SET;
    who.l_start = e.start();
    who.l_len = e.len();
    std::string holder = "someone else";
    if (fcntl(fd, ofd ? F_OFD_GETLK : F_GETLK, &who) == 0 && who.l_type != F_UNLCK) {
      holder = who.l_pid > 0 ? absl::StrFormat("pid %d", who.l_pid)
                             : std::string("another open file description (an OFD or flock lock)");
    }
    return absl::FailedPreconditionError(absl::StrFormat(
        "fd %d (%s): its %s is held by %s now: cannot take it back", fd, path, what, holder));
  }
  return absl::InternalError(
      absl::StrFormat("fd %d (%s): taking its %s: %s", fd, path, what, strerror(errno)));
}

}  // namespace

absl::Status FileLocks::Restore(RestoreContext& ctx) {
  std::string path = ctx.images_dir + "/filelocks.img";
  if (access(path.c_str(), F_OK) != 0) return absl::OkStatus();  // dumped without locks
  auto locks = images::ReadAll<criu::file_lock_entry>(path, LocksKind());
  if (!locks.ok()) return locks.status();
  size_t taken = 0;
  for (const criu::file_lock_entry& e : *locks) {
    // A task sharing its parent's fd table has none: the dump gave the
    // table's POSIX locks to its owner, and the owner's fds are the task's.
    if (e.pid() != ctx.pid) continue;
    if (auto s = TakeLock(e); !s.ok()) return s;
    ++taken;
  }
  if (taken != 0) log::Info("file-locks: pid %d took its %d locks back", ctx.pid, taken);
  return absl::OkStatus();
}

}  // namespace crpp::resources
