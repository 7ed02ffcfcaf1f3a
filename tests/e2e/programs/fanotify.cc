// fanotify: a fanotify group (FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK
// | FAN_UNLIMITED_QUEUE; event fds opened O_RDONLY | O_LARGEFILE |
// O_CLOEXEC), which a child holds too (fork), with these marks:
//   OUTDIR/watched   inode mark, FAN_MODIFY | FAN_CLOSE_WRITE;
//   OUTDIR's mount   mount mark, FAN_OPEN;
//   OUTDIR/quiet     inode mark FAN_CLOSE_WRITE with the ignored mask
//                    FAN_OPEN, which survives writes
//                    (FAN_MARK_IGNORED_SURV_MODIFY);
//   OUTDIR/newer     inode mark FAN_MODIFY with the ignored mask FAN_OPEN
//                    set the newer way (FAN_MARK_IGNORE);
//   OUTDIR's filesystem  filesystem mark, FAN_CLOSE_NOWRITE.
// The mount and filesystem marks see every process's files: the program
// only counts events on its own three files.
// Verdict: fdinfo shows the same "flags:" line and "fanotify" lines (flags,
// then every mark, in order) as at "ready"; once the events queued so far
// are read (events queued before a dump are lost; those of the restore's own
// opens are there), writing watched, quiet and newer and then reading quiet
// yields, each event from this pid with an fd of the file it is about:
//   watched  FAN_OPEN (the mount mark), FAN_MODIFY and FAN_CLOSE_WRITE;
//   quiet    FAN_CLOSE_WRITE and FAN_CLOSE_NOWRITE (the filesystem mark),
//            no FAN_OPEN: ignored, after the write too;
//   newer    FAN_MODIFY, no FAN_OPEN;
// the child held the same group (kcmp).
#include <fcntl.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <sys/fanotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "tests/e2e/programs/common.h"

namespace {

constexpr unsigned kInitFlags = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE;
constexpr unsigned kEventFlags = O_RDONLY | O_LARGEFILE | O_CLOEXEC;

void Mark(int group, unsigned flags, uint64_t mask, const std::string& path) {
  if (fanotify_mark(group, FAN_MARK_ADD | flags, mask, AT_FDCWD, path.c_str()) != 0) {
    crpp::e2e::Die(("fanotify_mark " + path).c_str());
  }
}

// The "flags:" line and the "fanotify ..." lines of /proc/self/fdinfo/FD.
std::vector<std::string> FdInfo(int fd) {
  std::vector<std::string> out;
  FILE* in = fopen(("/proc/self/fdinfo/" + std::to_string(fd)).c_str(), "r");
  if (in == nullptr) return out;
  char line[512];
  while (fgets(line, sizeof line, in) != nullptr) {
    if (strncmp(line, "flags:", 6) == 0 || strncmp(line, "fanotify ", 9) == 0) {
      out.emplace_back(line, strcspn(line, "\n"));
    }
  }
  fclose(in);
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "\n  " + l;
  return out;
}

ino_t Inode(const std::string& path) {
  struct stat st = {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Reads the events queued in GROUP, closing their fds, for LIMIT_MS (without
// SEEN: until none is left). Those on the inodes of FILES from this pid are
// ORed into SEEN's masks; from other pids, counted as foreign.
struct Seen {
  std::map<ino_t, uint64_t> masks;
  int foreign = 0, bad_fd = 0;
};
void ReadEvents(int group, const std::map<ino_t, std::string>& files, int limit_ms, Seen* seen) {
  const int64_t start = crpp::e2e::NowMs();
  // Small reads: each event read opens an fd.
  alignas(fanotify_event_metadata) char buf[1024];
  while (crpp::e2e::NowMs() - start < limit_ms) {
    ssize_t n = read(group, buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) {
      if (seen == nullptr) return;  // drained
      crpp::e2e::SleepMs(5);
      continue;
    }
    // EINTR, or an event whose file could not be opened: it is dropped.
    if (n <= 0) continue;
    for (auto* m = reinterpret_cast<fanotify_event_metadata*>(buf); FAN_EVENT_OK(m, n);
         m = FAN_EVENT_NEXT(m, n)) {
      struct stat st = {};
      const bool have = m->fd >= 0 && fstat(m->fd, &st) == 0;
      if (m->fd >= 0) close(m->fd);
      if (seen == nullptr || !have || !files.count(st.st_ino)) continue;
      if (m->pid != getpid()) {
        ++seen->foreign;
        continue;
      }
      if (!S_ISREG(st.st_mode)) ++seen->bad_fd;
      seen->masks[st.st_ino] |= m->mask;
    }
  }
}

void Touch(const std::string& path, int flags, crpp::e2e::Verdict& v) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  v.Expect(fd >= 0, "open %s: %s", path.c_str(), strerror(errno));
  if (fd < 0) return;
  if ((flags & O_ACCMODE) != O_RDONLY) {
    v.Expect(write(fd, "x", 1) == 1, "write %s: %s", path.c_str(), strerror(errno));
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "fanotify");
  const std::string watched = out + "/watched", quiet = out + "/quiet", newer = out + "/newer";
  for (const std::string& p : {watched, quiet, newer}) {
    int fd = open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) crpp::e2e::Die("create");
    close(fd);
  }
  const int group = fanotify_init(kInitFlags, kEventFlags);
  if (group < 0) crpp::e2e::Die("fanotify_init");
  Mark(group, FAN_MARK_INODE, FAN_MODIFY | FAN_CLOSE_WRITE, watched);
  Mark(group, FAN_MARK_MOUNT, FAN_OPEN, out);
  Mark(group, FAN_MARK_INODE, FAN_CLOSE_WRITE, quiet);
  Mark(group, FAN_MARK_INODE | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_OPEN,
       quiet);
  Mark(group, FAN_MARK_INODE, FAN_MODIFY, newer);
  Mark(group, FAN_MARK_INODE | FAN_MARK_IGNORE, FAN_OPEN, newer);
  Mark(group, FAN_MARK_FILESYSTEM, FAN_CLOSE_NOWRITE, out);
  const std::vector<std::string> at_ready = FdInfo(group);

  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    for (;;) pause();
  }
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  const std::vector<std::string> now = FdInfo(group);
  v.Expect(now == at_ready, "fdinfo:%s\nat ready:%s", Join(now).c_str(), Join(at_ready).c_str());
  v.Expect(fcntl(group, F_GETFL) & O_NONBLOCK, "the group lost O_NONBLOCK");
  v.Expect(syscall(SYS_kcmp, getpid(), child, KCMP_FILE, group, group) == 0,
           "the child holds another group");

  const std::map<ino_t, std::string> files = {
      {Inode(watched), "watched"}, {Inode(quiet), "quiet"}, {Inode(newer), "newer"}};
  ReadEvents(group, files, 2000, nullptr);  // what was queued before
  Touch(watched, O_WRONLY, v);
  Touch(quiet, O_WRONLY, v);
  Touch(newer, O_WRONLY, v);
  Touch(quiet, O_RDONLY, v);
  Seen seen;
  ReadEvents(group, files, 500, &seen);
  const uint64_t w = seen.masks[Inode(watched)], q = seen.masks[Inode(quiet)],
                 n = seen.masks[Inode(newer)];
  v.Expect(
      (w & (FAN_OPEN | FAN_MODIFY | FAN_CLOSE_WRITE)) == (FAN_OPEN | FAN_MODIFY | FAN_CLOSE_WRITE),
      "watched: events %#" PRIx64 " (want open, modify, close-write)", w);
  v.Expect((q & (FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE)) == (FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE) &&
               !(q & FAN_OPEN),
           "quiet: events %#" PRIx64 " (want close-write, close-nowrite, no open)", q);
  v.Expect((n & FAN_MODIFY) && !(n & FAN_OPEN), "newer: events %#" PRIx64 " (want modify, no open)",
           n);
  v.Expect(seen.foreign == 0, "%d events on the files from other pids", seen.foreign);
  v.Expect(seen.bad_fd == 0, "%d events with an fd that is no regular file", seen.bad_fd);

  kill(child, SIGKILL);
  int status = 0;
  v.Expect(waitpid(child, &status, 0) == child, "the child is gone");
  v.Note("marks=%zu watched=%#" PRIx64 " quiet=%#" PRIx64 " newer=%#" PRIx64, at_ready.size() - 2,
         w, q, n);
  v.Finish();
}
