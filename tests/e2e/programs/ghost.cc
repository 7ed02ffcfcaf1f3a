// ghost: files deleted while open.
// - OUTDIR/ghost.data: 64 KiB of known words, opened O_RDWR, then unlinked.
//   A child forked afterwards shares the description (and its offset). Every
//   10 ms the parent reads the next 8-byte word through it (checking it,
//   wrapping at 64 KiB) and writes its iteration count just past the data
//   (pwrite at 64 KiB: the file is 64 KiB + 8);
// - OUTDIR/ghost.log, opened O_WRONLY|O_APPEND, then unlinked: a 16-byte
//   record appended every iteration;
// - OUTDIR/direct.data, not deleted, opened O_RDWR|O_DIRECT (when the file
//   system allows it);
// - with CRPP_E2E_GHOST_LINKED=1 in the environment (dumped with
//   --link-remap): OUTDIR/linked.data, opened O_RDWR at offset 3 and unlinked
//   while a second hard link, OUTDIR/linked.keep, keeps it.
// Verdict: the data fd is still a deleted file named ghost.data (nlink 0)
// with its contents, its offset continues where the loop left it and the
// next read continues there, the count is past the data; the child, asked
// through a pipe, sees the same offset and count (one description); the log
// is still appended to, with O_APPEND; direct.data keeps O_DIRECT; the
// linked file is still linked.data (deleted), the inode of linked.keep, at
// its offset, and no link_remap.* name is left in OUTDIR.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/e2e/programs/common.h"

namespace {

constexpr off_t kDataSize = 64 << 10;
constexpr size_t kRecord = 16;

uint64_t Word(uint64_t i) { return crpp::e2e::Random(i * 0x9e3779b97f4a7c15ULL + 7).Next(); }

// What the child reports about the shared description.
struct ChildView {
  int64_t offset = -1;
  uint64_t count = 0;
  int64_t nlink = -1;
};

[[noreturn]] void ChildLoop(int fd, int ask, int answer) {
  char c;
  while (read(ask, &c, 1) != 1) {
    if (errno != EINTR) _exit(3);
  }
  ChildView v;
  v.offset = lseek(fd, 0, SEEK_CUR);
  pread(fd, &v.count, sizeof(v.count), kDataSize);
  struct stat st = {};
  if (fstat(fd, &st) == 0) v.nlink = static_cast<int64_t>(st.st_nlink);
  if (write(answer, &v, sizeof(v)) != sizeof(v)) _exit(4);
  _exit(0);
}

std::string FdPath(int fd) {
  char buf[4096];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof(buf) - 1);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = crpp::e2e::Setup(argc, argv, "ghost");
  const std::string data_path = dir + "/ghost.data", log_path = dir + "/ghost.log";
  const int data_fd = open(data_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (data_fd < 0) crpp::e2e::Die("open ghost.data");
  std::vector<uint64_t> words(kDataSize / 8);
  for (size_t i = 0; i < words.size(); ++i) words[i] = Word(i);
  if (write(data_fd, words.data(), kDataSize) != kDataSize) crpp::e2e::Die("write ghost.data");
  uint64_t count = 0;
  if (pwrite(data_fd, &count, sizeof(count), kDataSize) != sizeof(count)) crpp::e2e::Die("pwrite");
  lseek(data_fd, 0, SEEK_SET);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0600);
  if (log_fd < 0) crpp::e2e::Die("open ghost.log");
  if (unlink(data_path.c_str()) != 0 || unlink(log_path.c_str()) != 0) crpp::e2e::Die("unlink");
  const std::string direct_path = dir + "/direct.data";
  int direct_fd = open(direct_path.c_str(), O_RDWR | O_CREAT | O_DIRECT, 0600);
  const bool direct = direct_fd >= 0;
  if (!direct) direct_fd = open(direct_path.c_str(), O_RDWR | O_CREAT, 0600);
  if (direct_fd < 0) crpp::e2e::Die("open direct.data");

  const bool linked = getenv("CRPP_E2E_GHOST_LINKED") != nullptr;
  const std::string linked_path = dir + "/linked.data", keep_path = dir + "/linked.keep";
  int linked_fd = -1;
  if (linked) {
    linked_fd = open(linked_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (linked_fd < 0 || write(linked_fd, "linked data", 11) != 11) crpp::e2e::Die("linked");
    if (link(linked_path.c_str(), keep_path.c_str()) != 0) crpp::e2e::Die("link");
    if (unlink(linked_path.c_str()) != 0 || lseek(linked_fd, 3, SEEK_SET) != 3) {
      crpp::e2e::Die("unlink linked.data");
    }
  }

  int ask[2], answer[2];
  if (pipe(ask) != 0 || pipe(answer) != 0) crpp::e2e::Die("pipe");
  const pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) {
    close(ask[1]);
    close(answer[0]);
    ChildLoop(data_fd, ask[0], answer[1]);
  }
  close(ask[0]);
  close(answer[1]);
  crpp::e2e::Ready();

  off_t expected = 0;
  uint64_t records = 0;
  std::string loop_error;
  while (!crpp::e2e::g_verify_requested) {
    uint64_t w = 0;
    ssize_t n = read(data_fd, &w, sizeof(w));
    if ((n != sizeof(w) || w != Word(static_cast<uint64_t>(expected) / 8)) && loop_error.empty()) {
      loop_error = "read at offset " + std::to_string(expected) + " returned " + std::to_string(n) +
                   " bytes not matching the data";
    }
    expected += 8;
    if (expected == kDataSize) {
      lseek(data_fd, 0, SEEK_SET);
      expected = 0;
    }
    ++count;
    if (pwrite(data_fd, &count, sizeof(count), kDataSize) != sizeof(count) && loop_error.empty()) {
      loop_error = std::string("pwrite of the count: ") + strerror(errno);
    }
    char record[kRecord + 1];
    snprintf(record, sizeof(record), "rec %011" PRIu64 "\n", records);
    if (write(log_fd, record, kRecord) == kRecord) ++records;
    crpp::e2e::SleepMs(10);
  }

  crpp::e2e::Verdict v;
  v.Expect(loop_error.empty(), "%s", loop_error.c_str());
  const std::string path = FdPath(data_fd);
  v.Expect(path == data_path + " (deleted)", "the data fd is %s, want %s (deleted)", path.c_str(),
           data_path.c_str());
  struct stat st = {};
  fstat(data_fd, &st);
  v.Expect(st.st_nlink == 0, "the data file has %ju links, want 0", (uintmax_t)st.st_nlink);
  v.Expect(st.st_size == kDataSize + 8, "the data file has %lld bytes, want %lld",
           (long long)st.st_size, (long long)kDataSize + 8);
  v.Expect((st.st_mode & 07777) == 0640, "the data file's mode is %o, want 640",
           st.st_mode & 07777);
  v.Expect(access(data_path.c_str(), F_OK) != 0, "%s exists again", data_path.c_str());
  const off_t at = lseek(data_fd, 0, SEEK_CUR);
  v.Expect(at == expected, "the data fd's offset is %lld, want %lld", (long long)at,
           (long long)expected);
  uint64_t stored = 0;
  pread(data_fd, &stored, sizeof(stored), kDataSize);
  v.Expect(stored == count, "the count in the file is %" PRIu64 ", want %" PRIu64, stored, count);
  std::vector<uint64_t> now(kDataSize / 8);
  v.Expect(pread(data_fd, now.data(), kDataSize, 0) == kDataSize && now == words,
           "the deleted file's contents changed");

  // The child shares the description: same offset, same file.
  char go = 'v';
  ChildView cv;
  const bool asked = write(ask[1], &go, 1) == 1 && read(answer[0], &cv, sizeof(cv)) == sizeof(cv);
  v.Expect(asked, "the child did not answer");
  int status = 0;
  waitpid(child, &status, 0);
  v.Expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child ended with status %#x",
           status);
  v.Expect(cv.offset == at, "the child sees offset %lld, the parent %lld", (long long)cv.offset,
           (long long)at);
  v.Expect(cv.count == count && cv.nlink == 0, "the child sees count %" PRIu64 " (nlink %lld)",
           cv.count, (long long)cv.nlink);
  uint64_t w = 0;
  v.Expect(read(data_fd, &w, sizeof(w)) == sizeof(w) && w == Word(static_cast<uint64_t>(at) / 8),
           "the next read did not continue at offset %lld", (long long)at);
  v.Expect(lseek(data_fd, 0, SEEK_CUR) == at + 8, "the next read did not move the offset");

  const int log_flags = fcntl(log_fd, F_GETFL);
  v.Expect((log_flags & O_APPEND) && (log_flags & O_ACCMODE) == O_WRONLY,
           "the log fd's flags are %#x, want O_WRONLY|O_APPEND", log_flags);
  fstat(log_fd, &st);
  v.Expect(st.st_nlink == 0 && st.st_size == static_cast<off_t>(records * kRecord),
           "the log has %lld bytes and %ju links, want %" PRIu64 " and 0", (long long)st.st_size,
           (uintmax_t)st.st_nlink, records * kRecord);
  lseek(log_fd, 0, SEEK_SET);  // O_APPEND must still win over the offset
  v.Expect(write(log_fd, "appended record\n", kRecord) == kRecord, "appending to the log failed");
  fstat(log_fd, &st);
  v.Expect(st.st_size == static_cast<off_t>((records + 1) * kRecord),
           "a write to the log did not append");
  if (direct) {
    v.Expect(fcntl(direct_fd, F_GETFL) & O_DIRECT, "direct.data lost O_DIRECT");
  }
  if (linked) {
    const std::string lp = FdPath(linked_fd);
    v.Expect(lp == linked_path + " (deleted)", "the linked fd is %s", lp.c_str());
    struct stat keep = {};
    fstat(linked_fd, &st);
    v.Expect(stat(keep_path.c_str(), &keep) == 0 && keep.st_ino == st.st_ino && st.st_nlink == 1,
             "the linked fd is no longer the inode of linked.keep alone (nlink %ju)",
             (uintmax_t)st.st_nlink);
    char buf[16] = {};
    v.Expect(lseek(linked_fd, 0, SEEK_CUR) == 3 && read(linked_fd, buf, 8) == 8 &&
                 std::string(buf) == "ked data",
             "the linked fd's offset or contents changed");
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        v.Expect(strncmp(e->d_name, "link_remap", 10) != 0, "%s is left in OUTDIR", e->d_name);
      }
      closedir(d);
    }
  }
  v.Note("reads=%" PRIu64 " offset=%lld records=%" PRIu64 " o_direct=%s linked=%s", count,
         (long long)at, records, direct ? "yes" : "unsupported here", linked ? "yes" : "no");
  v.Finish();
}
