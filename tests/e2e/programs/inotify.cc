// inotify: an inotify instance (O_NONBLOCK) shared by the root and a child
// (one description), watching OUTDIR (IN_CREATE, watch 1) and OUTDIR/sub
// (IN_DELETE, watch 3; watch 2, on OUTDIR/gone, was removed: the numbers
// have a gap).
// Verdict: creating OUTDIR/new reports IN_CREATE "new" on watch 1, deleting
// OUTDIR/sub/old reports IN_DELETE "old" on watch 3, both read by the root;
// the instance is still non-blocking; the child still holds the same
// instance (same inode).
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

// Reads events (waiting up to 2 s) until one on WD with MASK and NAME shows.
bool SeeEvent(int fd, int wd, uint32_t mask, const std::string& name, std::string& seen) {
  for (int waited = 0; waited < 2000; waited += 5) {
    alignas(inotify_event) char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    for (ssize_t at = 0; n > 0 && at < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
      std::string got = e->len ? e->name : "";
      seen += "wd" + std::to_string(e->wd) + ":" + got + " ";
      if (e->wd == wd && (e->mask & mask) && got == name) return true;
      at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
    crpp::e2e::SleepMs(5);
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "inotify");
  const std::string sub = out + "/sub", gone = out + "/gone";
  if (mkdir(sub.c_str(), 0700) != 0 || mkdir(gone.c_str(), 0700) != 0) crpp::e2e::Die("mkdir");
  int old = open((sub + "/old").c_str(), O_CREAT | O_WRONLY, 0600);
  if (old < 0) crpp::e2e::Die("create sub/old");
  close(old);
  int fd = inotify_init1(IN_NONBLOCK);
  if (fd < 0) crpp::e2e::Die("inotify_init1");
  const int w1 = inotify_add_watch(fd, out.c_str(), IN_CREATE);
  const int w2 = inotify_add_watch(fd, gone.c_str(), IN_CREATE);
  const int w3 = inotify_add_watch(fd, sub.c_str(), IN_DELETE);
  if (w1 != 1 || w2 != 2 || w3 != 3 || inotify_rm_watch(fd, w2) != 0) crpp::e2e::Die("watches");
  // Drop the IN_IGNORED event the removal queued.
  char drain[4096];
  while (read(fd, drain, sizeof drain) > 0) {
  }
  struct stat mine;
  fstat(fd, &mine);
  int answer[2];
  if (pipe(answer) != 0) crpp::e2e::Die("pipe");
  const pid_t root = getpid();
  pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    for (;;) pause();
  }
  crpp::e2e::Ready();
  const uint64_t ticks = crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  std::string seen;
  int created = open((out + "/new").c_str(), O_CREAT | O_WRONLY, 0600);
  if (created >= 0) close(created);
  v.Expect(SeeEvent(fd, 1, IN_CREATE, "new", seen), "no IN_CREATE of new on watch 1 (saw %s)",
           seen.c_str());
  seen.clear();
  unlink((sub + "/old").c_str());
  v.Expect(SeeEvent(fd, 3, IN_DELETE, "old", seen), "no IN_DELETE of old on watch 3 (saw %s)",
           seen.c_str());
  v.Expect(fcntl(fd, F_GETFL) & O_NONBLOCK, "the instance is no longer non-blocking");
  struct stat theirs;
  const std::string childs = "/proc/" + std::to_string(child) + "/fd/" + std::to_string(fd);
  v.Expect(
      stat(childs.c_str(), &theirs) == 0 && theirs.st_ino ==
                                                [&] {
                                                  struct stat now;
                                                  fstat(fd, &now);
                                                  return now.st_ino;
                                                }(),
      "the child holds another instance");
  kill(child, SIGKILL);
  int st = 0;
  v.Expect(waitpid(child, &st, 0) == child, "the child is gone");
  v.Note("ticks=%" PRIu64 " child=%d", ticks, child);
  v.Finish();
}
