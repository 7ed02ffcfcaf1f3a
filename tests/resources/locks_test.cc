// The file-locks plugin on a real child that holds locks: what it refuses
// without --file-locks, what it writes, and its restore taking the locks
// again (in this process) or failing when someone else holds one.
#define BOOST_TEST_MODULE locks
#include "resources/files/locks.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <string>

#include "core/context.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "file-lock.pb.h"
#include "tests/testing/files.h"

namespace crpp {
namespace {

using testing::FreshDir;

constexpr int kFlockFd = 40, kPosixFd = 41;

struct flock Range(short type, off_t start, off_t len) {
  struct flock fl = {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  return fl;
}

// Opens `path` at `fd` (in this process).
void OpenAt(const std::string& path, int fd) {
  int f = open(path.c_str(), O_RDWR | O_CREAT, 0600);
  BOOST_REQUIRE(f >= 0);
  BOOST_REQUIRE(dup2(f, fd) == fd);
  if (f != fd) close(f);
}

// A child holding an exclusive flock on DIR/a (fd 40) and a POSIX read lock
// on bytes 10..19 of DIR/b (fd 41).
pid_t StartHolder(const std::string& dir) {
  int ready[2];
  BOOST_REQUIRE(pipe(ready) == 0);
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    int a = open((dir + "/a").c_str(), O_RDWR | O_CREAT, 0600);
    int b = open((dir + "/b").c_str(), O_RDWR | O_CREAT, 0600);
    struct flock fl = Range(F_RDLCK, 10, 10);
    // Closing an fd of a file drops the process's POSIX locks on it: the
    // fds are in place before the locks are taken.
    if (a < 0 || b < 0 || dup2(a, kFlockFd) < 0 || dup2(b, kPosixFd) < 0) _exit(2);
    close(a);
    close(b);
    if (flock(kFlockFd, LOCK_EX) != 0 || fcntl(kPosixFd, F_SETLK, &fl) != 0) _exit(3);
    // A dup of the flock's description: its lock is written once.
    if (dup2(kFlockFd, kFlockFd + 10) < 0) _exit(4);
    char c = 'r';
    if (write(ready[1], &c, 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(ready[1]);
  char c = 0;
  BOOST_REQUIRE(read(ready[0], &c, 1) == 1);
  close(ready[0]);
  return pid;
}

void Stop(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

DumpContext ContextFor(pid_t pid, const std::string& images, FileTable& files, bool locks) {
  DumpContext d;
  d.root_pid = pid;
  d.pid = pid;
  d.images_dir = images;
  d.files = &files;
  d.file_locks = locks;
  return d;
}

// In a forked helper: 0 when DIR/a's flock and DIR/b's POSIX range are held
// by `holder`, else a bit per lock found free.
int ProbeHeld(const std::string& dir, pid_t holder) {
  pid_t p = fork();
  if (p == 0) {
    int wrong = 0;
    int a = open((dir + "/a").c_str(), O_RDWR);
    if (flock(a, LOCK_EX | LOCK_NB) == 0) wrong |= 1;
    int b = open((dir + "/b").c_str(), O_RDWR);
    struct flock fl = Range(F_WRLCK, 0, 100);
    if (fcntl(b, F_GETLK, &fl) != 0 || fl.l_type != F_RDLCK || fl.l_pid != holder ||
        fl.l_start != 10 || fl.l_len != 10) {
      wrong |= 2;
    }
    _exit(wrong);
  }
  int status = 0;
  waitpid(p, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

BOOST_AUTO_TEST_CASE(refused_without_the_option_dumped_with_it_and_taken_back) {
  const std::string dir = FreshDir("locks-data"), images = FreshDir("locks-images");
  pid_t pid = StartHolder(dir);
  FileTable files;
  // Both ways of finding the locks: every fd's fdinfo (a tree with few fds),
  // or only those of the inodes /proc/locks names (the dump driver read it).
  for (bool proc_locks : {false, true}) {
    BOOST_TEST_CONTEXT("through /proc/locks: " << proc_locks) {
      DumpContext without = ContextFor(pid, images, files, false);
      if (proc_locks) without.ReadProcLocksAhead();
      absl::Status s = resources::FileLocks::Precheck(without);
      BOOST_TEST(absl::IsFailedPrecondition(s));
      BOOST_TEST(s.message().find("--file-locks") != std::string::npos, s.message());
      BOOST_TEST(s.message().find("fd 40") != std::string::npos, s.message());
      BOOST_TEST(!resources::FileLocks::Dump(without).ok());

      DumpContext with = ContextFor(pid, images, files, true);
      if (proc_locks) with.ReadProcLocksAhead();
      BOOST_REQUIRE(resources::FileLocks::Precheck(with).ok());
      s = resources::FileLocks::Dump(with);
      BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
      auto locks = images::ReadAll<criu::file_lock_entry>(images + "/filelocks.img",
                                                          *images::FindKindByName("FILE_LOCKS"));
      BOOST_REQUIRE(locks.ok());
      BOOST_REQUIRE_EQUAL(locks->size(), 2u);
      const auto& f = (*locks)[0];
      const auto& p = (*locks)[1];
      BOOST_TEST(f.flag() == 2u);  // FL_FLOCK
      BOOST_TEST(f.type() == static_cast<uint32_t>(F_WRLCK));
      BOOST_TEST(f.fd() == kFlockFd);
      BOOST_TEST(f.pid() == pid);
      BOOST_TEST(p.flag() == 1u);  // FL_POSIX
      BOOST_TEST(p.type() == static_cast<uint32_t>(F_RDLCK));
      BOOST_TEST(p.fd() == kPosixFd);
      BOOST_TEST(p.start() == 10);
      BOOST_TEST(p.len() == 10);
    }
  }
  Stop(pid);

  // Restore as that pid, in this process, on the same fd numbers.
  OpenAt(dir + "/a", kFlockFd);
  OpenAt(dir + "/b", kPosixFd);
  RestoreContext r;
  r.images_dir = images;
  r.pid = pid;
  absl::Status s = resources::FileLocks::Restore(r);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_TEST(ProbeHeld(dir, getpid()) == 0);
  close(kFlockFd);
  close(kPosixFd);
}

BOOST_AUTO_TEST_CASE(a_lock_someone_else_holds_fails_the_restore) {
  const std::string dir = FreshDir("locks-conflict"), images = FreshDir("locks-conflict-images");
  pid_t pid = StartHolder(dir);
  FileTable files;
  DumpContext d = ContextFor(pid, images, files, true);
  BOOST_REQUIRE(resources::FileLocks::Dump(d).ok());
  Stop(pid);
  // Another description of DIR/a holds its flock now.
  int other = open((dir + "/a").c_str(), O_RDWR);
  BOOST_REQUIRE(flock(other, LOCK_EX | LOCK_NB) == 0);
  OpenAt(dir + "/a", kFlockFd);
  OpenAt(dir + "/b", kPosixFd);
  RestoreContext r;
  r.images_dir = images;
  r.pid = pid;
  absl::Status s = resources::FileLocks::Restore(r);
  BOOST_TEST(absl::IsFailedPrecondition(s));
  BOOST_TEST(s.message().find("flock write lock is held by someone else") != std::string::npos,
             s.message());
  BOOST_TEST(s.message().find(dir + "/a") != std::string::npos, s.message());
  close(other);
  close(kFlockFd);
  close(kPosixFd);
}

}  // namespace
}  // namespace crpp
