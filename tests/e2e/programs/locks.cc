// locks: file locks held on files in OUTDIR.
// - flock.lock: an exclusive flock(2) lock;
// - posix.lock: a POSIX write lock (F_SETLK) on bytes 100..199 and a POSIX
//   read lock from byte 1000 to the end of the file;
// - ofd.lock: an OFD write lock (F_OFD_SETLK) on bytes 0..4095, taken on a
//   description that is then dup'ed to fd 50.
// The program then sleeps in a loop.
// Verdict: a helper forked now finds every lock held (flock LOCK_NB fails,
// F_GETLK names this process for each POSIX range, F_OFD_GETLK finds the OFD
// lock), and after this process unlocks them a second helper takes each of
// them freely.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

constexpr int kOfdDup = 50;

int OpenLockFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) crpp::e2e::Die(path.c_str());
  if (ftruncate(fd, 8192) != 0) crpp::e2e::Die("ftruncate");
  return fd;
}

struct flock Range(short type, off_t start, off_t len) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fl;
}

// Run in a forked helper: a bit set for each lock found in the wrong state
// (HELD: every lock must be held by `holder`; else every lock must be free).
int Probe(const std::string& dir, pid_t holder, bool held) {
  int wrong = 0;
  int f = open((dir + "/flock.lock").c_str(), O_RDWR);
  bool taken = flock(f, LOCK_EX | LOCK_NB) == 0;
  if (taken == held) wrong |= 1;
  close(f);

  int p = open((dir + "/posix.lock").c_str(), O_RDWR);
  struct flock a = Range(F_WRLCK, 150, 10);
  if (fcntl(p, F_GETLK, &a) != 0) wrong |= 2;
  if (held ? (a.l_type != F_WRLCK || a.l_pid != holder || a.l_start != 100 || a.l_len != 100)
           : a.l_type != F_UNLCK) {
    wrong |= 2;
  }
  struct flock b = Range(F_WRLCK, 5000, 1);
  if (fcntl(p, F_GETLK, &b) != 0) wrong |= 4;
  if (held ? (b.l_type != F_RDLCK || b.l_pid != holder || b.l_start != 1000 || b.l_len != 0)
           : b.l_type != F_UNLCK) {
    wrong |= 4;
  }
  struct flock r = Range(F_RDLCK, 0, 100);  // a read lock before the write range is fine
  if (fcntl(p, F_SETLK, &r) != 0) wrong |= 8;
  close(p);

  int o = open((dir + "/ofd.lock").c_str(), O_RDWR);
  struct flock c = Range(F_RDLCK, 10, 1);
  if (fcntl(o, F_OFD_GETLK, &c) != 0) wrong |= 16;
  if (held ? (c.l_type != F_WRLCK || c.l_start != 0 || c.l_len != 4096) : c.l_type != F_UNLCK) {
    wrong |= 16;
  }
  struct flock d = Range(F_WRLCK, 0, 4096);
  if ((fcntl(o, F_OFD_SETLK, &d) == 0) == held) wrong |= 32;
  close(o);
  return wrong;
}

int RunProbe(const std::string& dir, bool held) {
  const pid_t me = getpid();
  const pid_t helper = fork();
  if (helper < 0) return -1;
  if (helper == 0) _exit(Probe(dir, me, held));
  int status = 0;
  if (waitpid(helper, &status, 0) != helper || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = crpp::e2e::Setup(argc, argv, "locks");
  const int flock_fd = OpenLockFile(dir + "/flock.lock");
  const int posix_fd = OpenLockFile(dir + "/posix.lock");
  const int ofd_fd = OpenLockFile(dir + "/ofd.lock");
  if (flock(flock_fd, LOCK_EX | LOCK_NB) != 0) crpp::e2e::Die("flock");
  struct flock w = Range(F_WRLCK, 100, 100);
  struct flock r = Range(F_RDLCK, 1000, 0);
  if (fcntl(posix_fd, F_SETLK, &w) != 0 || fcntl(posix_fd, F_SETLK, &r) != 0) {
    crpp::e2e::Die("F_SETLK");
  }
  struct flock o = Range(F_WRLCK, 0, 4096);
  if (fcntl(ofd_fd, F_OFD_SETLK, &o) != 0) crpp::e2e::Die("F_OFD_SETLK");
  if (dup2(ofd_fd, kOfdDup) != kOfdDup) crpp::e2e::Die("dup2");
  crpp::e2e::Ready();

  const uint64_t loops = crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  const int held = RunProbe(dir, true);
  v.Expect(held == 0,
           "a helper found locks not held as they were (mask %#x: 1 flock, 2/4 POSIX "
           "ranges, 8 a free range, 16/32 OFD)",
           held);
  struct flock un = Range(F_UNLCK, 0, 0);
  v.Expect(flock(flock_fd, LOCK_UN) == 0, "flock(LOCK_UN): %s", strerror(errno));
  v.Expect(fcntl(posix_fd, F_SETLK, &un) == 0, "POSIX unlock: %s", strerror(errno));
  v.Expect(fcntl(kOfdDup, F_OFD_SETLK, &un) == 0, "OFD unlock: %s", strerror(errno));
  const int freed = RunProbe(dir, false);
  v.Expect(freed == 0, "after unlocking, a helper found locks still held (mask %#x)", freed);
  v.Note("loops=%" PRIu64, loops);
  v.Finish();
}
