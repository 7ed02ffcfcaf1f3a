// files: open files and per-process state kept with them.
// - a 1 MiB data file it wrote, opened read-only (O_CLOEXEC) and dup'ed to fd
//   100: every 10 ms the next 4 KiB is read, alternately through either fd
//   (they share one offset), wrapping at the end;
// - a second file opened O_WRONLY|O_APPEND, to which every iteration appends
//   a 16-byte record;
// - cwd (a subdirectory of OUTDIR), umask 027, RLIMIT_NOFILE soft limit 777,
//   RLIMIT_CORE soft limit 4 MiB, the task name, and credentials: uids, gids,
//   supplementary groups (set to 4242,4243 when root may), capability sets,
//   the bounding set (CAP_SYS_BOOT dropped), securebits, no_new_privs.
// Verdict: both fds stand at the expected offset and the next read continues
// there; the append fd appends at the end; all the rest is as it was set up.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tests/e2e/programs/common.h"

namespace {

constexpr off_t kDataSize = 1 << 20;
constexpr size_t kChunk = 4096;
constexpr int kDupFd = 100;
constexpr size_t kRecord = 16;
constexpr mode_t kUmask = 027;
constexpr rlim_t kNofile = 777;
constexpr rlim_t kCore = 4 << 20;
constexpr const char kName[] = "crpp-files";

// Everything compared before and after.
struct Identity {
  std::string cwd;
  mode_t umask = 0;
  struct rlimit nofile = {};
  struct rlimit core = {};
  std::string name;
  uid_t uid[3] = {};
  gid_t gid[3] = {};
  std::vector<gid_t> groups;
  __user_cap_data_struct caps[2] = {};
  uint64_t bounding = 0;
  uint64_t ambient = 0;
  int securebits = 0;
  int no_new_privs = 0;
};

// The data file's 8-byte word number I.
uint64_t Word(uint64_t i) { return crpp::e2e::Random(i * 0x2545f4914f6cdd1dULL).Next(); }

bool ChunkMatches(const uint64_t* words, off_t offset) {
  for (size_t i = 0; i < kChunk / 8; ++i) {
    if (words[i] != Word(static_cast<uint64_t>(offset) / 8 + i)) return false;
  }
  return true;
}

int LastCap() {
  FILE* f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  int last = 40;
  if (f != nullptr) {
    if (fscanf(f, "%d", &last) != 1) last = 40;
    fclose(f);
  }
  return last;
}

Identity ReadIdentity() {
  Identity id;
  char buf[4096];
  id.cwd = getcwd(buf, sizeof(buf)) != nullptr ? buf : "?";
  id.umask = umask(0);
  umask(id.umask);
  getrlimit(RLIMIT_NOFILE, &id.nofile);
  getrlimit(RLIMIT_CORE, &id.core);
  char name[17] = {0};
  prctl(PR_GET_NAME, name);
  id.name = name;
  getresuid(&id.uid[0], &id.uid[1], &id.uid[2]);
  getresgid(&id.gid[0], &id.gid[1], &id.gid[2]);
  id.groups.resize(static_cast<size_t>(getgroups(0, nullptr)));
  getgroups(static_cast<int>(id.groups.size()), id.groups.data());
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  syscall(SYS_capget, &header, id.caps);
  for (int cap = 0; cap <= LastCap(); ++cap) {
    if (prctl(PR_CAPBSET_READ, cap) == 1) id.bounding |= uint64_t{1} << cap;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
      id.ambient |= uint64_t{1} << cap;
  }
  id.securebits = prctl(PR_GET_SECUREBITS);
  id.no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  return id;
}

void CompareIdentity(const Identity& a, const Identity& b, crpp::e2e::Verdict& v) {
  v.Expect(a.cwd == b.cwd, "cwd is %s, want %s", b.cwd.c_str(), a.cwd.c_str());
  v.Expect(a.umask == b.umask, "umask is %03o, want %03o", b.umask, a.umask);
  v.Expect(a.nofile.rlim_cur == b.nofile.rlim_cur && a.nofile.rlim_max == b.nofile.rlim_max,
           "RLIMIT_NOFILE is %llu/%llu, want %llu/%llu", (unsigned long long)b.nofile.rlim_cur,
           (unsigned long long)b.nofile.rlim_max, (unsigned long long)a.nofile.rlim_cur,
           (unsigned long long)a.nofile.rlim_max);
  v.Expect(a.core.rlim_cur == b.core.rlim_cur && a.core.rlim_max == b.core.rlim_max,
           "RLIMIT_CORE is %llu/%llu, want %llu/%llu", (unsigned long long)b.core.rlim_cur,
           (unsigned long long)b.core.rlim_max, (unsigned long long)a.core.rlim_cur,
           (unsigned long long)a.core.rlim_max);
  v.Expect(a.name == b.name, "task name is %s, want %s", b.name.c_str(), a.name.c_str());
  v.Expect(memcmp(a.uid, b.uid, sizeof(a.uid)) == 0, "uids are %u/%u/%u, want %u/%u/%u", b.uid[0],
           b.uid[1], b.uid[2], a.uid[0], a.uid[1], a.uid[2]);
  v.Expect(memcmp(a.gid, b.gid, sizeof(a.gid)) == 0, "gids are %u/%u/%u, want %u/%u/%u", b.gid[0],
           b.gid[1], b.gid[2], a.gid[0], a.gid[1], a.gid[2]);
  v.Expect(a.groups == b.groups, "supplementary groups changed (%zu now, %zu before)",
           b.groups.size(), a.groups.size());
  v.Expect(memcmp(a.caps, b.caps, sizeof(a.caps)) == 0,
           "capabilities changed: effective %08x%08x, want %08x%08x", b.caps[1].effective,
           b.caps[0].effective, a.caps[1].effective, a.caps[0].effective);
  v.Expect(a.bounding == b.bounding, "bounding set is %" PRIx64 ", want %" PRIx64, b.bounding,
           a.bounding);
  v.Expect(a.ambient == b.ambient, "ambient set is %" PRIx64 ", want %" PRIx64, b.ambient,
           a.ambient);
  v.Expect(a.securebits == b.securebits, "securebits are %#x, want %#x", b.securebits,
           a.securebits);
  v.Expect(a.no_new_privs == b.no_new_privs, "no_new_privs is %d, want %d", b.no_new_privs,
           a.no_new_privs);
}

void WriteDataFile(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) crpp::e2e::Die(path);
  std::vector<uint64_t> words(kDataSize / 8);
  for (size_t i = 0; i < words.size(); ++i) words[i] = Word(i);
  if (write(fd, words.data(), kDataSize) != kDataSize) crpp::e2e::Die("write data file");
  close(fd);
}

// Sets up the process-wide state; what root may change is changed.
void SetUpProcess(const std::string& dir) {
  std::string cwd = dir + "/files_cwd";
  if (mkdir(cwd.c_str(), 0755) != 0 && errno != EEXIST) crpp::e2e::Die("mkdir");
  if (chdir(cwd.c_str()) != 0) crpp::e2e::Die("chdir");
  umask(kUmask);
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = kNofile;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) crpp::e2e::Die("setrlimit(RLIMIT_NOFILE)");
  getrlimit(RLIMIT_CORE, &rl);
  rl.rlim_cur = rl.rlim_max < kCore ? rl.rlim_max : kCore;
  if (setrlimit(RLIMIT_CORE, &rl) != 0) crpp::e2e::Die("setrlimit(RLIMIT_CORE)");
  prctl(PR_SET_NAME, kName);
  if (geteuid() == 0) {
    // Both may be refused in a user namespace (unmapped gids): then the
    // current values are what is compared.
    const gid_t groups[] = {4242, 4243};
    if (setgroups(2, groups) != 0) fprintf(stderr, "files: setgroups: %s\n", strerror(errno));
    if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0) != 0) {
      fprintf(stderr, "files: PR_CAPBSET_DROP: %s\n", strerror(errno));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = crpp::e2e::Setup(argc, argv, "files");
  SetUpProcess(dir);
  WriteDataFile("data.bin");
  const int data_fd = open("data.bin", O_RDONLY | O_CLOEXEC);
  if (data_fd < 0 || dup2(data_fd, kDupFd) != kDupFd) crpp::e2e::Die("open data.bin");
  const int append_fd = open("append.log", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0666);
  if (append_fd < 0) crpp::e2e::Die("open append.log");
  const Identity before = ReadIdentity();
  crpp::e2e::Ready();

  alignas(8) uint64_t chunk[kChunk / 8];
  off_t expected = 0;
  uint64_t reads = 0;
  uint64_t records = 0;
  std::string loop_error;
  while (!crpp::e2e::g_verify_requested) {
    const int fd = reads % 2 == 0 ? data_fd : kDupFd;
    ssize_t n = read(fd, chunk, kChunk);
    if (n != static_cast<ssize_t>(kChunk) || !ChunkMatches(chunk, expected)) {
      if (loop_error.empty()) {
        loop_error = "read " + std::to_string(reads) + " (fd " + std::to_string(fd) +
                     ") returned " + std::to_string(n) + " bytes not matching offset " +
                     std::to_string(expected);
      }
    }
    ++reads;
    expected += kChunk;
    if (expected == kDataSize) {
      lseek(data_fd, 0, SEEK_SET);
      expected = 0;
    }
    char record[kRecord + 1];
    snprintf(record, sizeof(record), "rec %011" PRIu64 "\n", records);
    if (write(append_fd, record, kRecord) == kRecord) ++records;
    crpp::e2e::SleepMs(10);
  }

  crpp::e2e::Verdict v;
  v.Expect(loop_error.empty(), "%s", loop_error.c_str());
  const off_t at = lseek(data_fd, 0, SEEK_CUR);
  v.Expect(at == expected, "data fd offset is %lld, want %lld", (long long)at, (long long)expected);
  v.Expect(lseek(kDupFd, 0, SEEK_CUR) == at, "fd %d no longer shares the data fd's offset", kDupFd);
  const ssize_t n = read(kDupFd, chunk, kChunk);
  v.Expect(n == static_cast<ssize_t>(kChunk) && ChunkMatches(chunk, expected),
           "the next read (fd %d) did not continue at offset %lld", kDupFd, (long long)expected);
  v.Expect(fcntl(data_fd, F_GETFD) == FD_CLOEXEC, "the data fd lost FD_CLOEXEC");
  v.Expect(fcntl(kDupFd, F_GETFD) == 0, "fd %d gained FD_CLOEXEC", kDupFd);
  v.Expect((fcntl(data_fd, F_GETFL) & O_ACCMODE) == O_RDONLY, "the data fd is not read-only");
  const int flags = fcntl(append_fd, F_GETFL);
  v.Expect((flags & O_APPEND) && (flags & O_ACCMODE) == O_WRONLY,
           "the append fd's flags are %#x, want O_WRONLY|O_APPEND", flags);
  struct stat st = {};
  fstat(append_fd, &st);
  v.Expect(st.st_size == static_cast<off_t>(records * kRecord),
           "append.log has %lld bytes, want %" PRIu64, (long long)st.st_size, records * kRecord);
  lseek(append_fd, 0, SEEK_SET);  // O_APPEND must still win over the offset
  v.Expect(write(append_fd, "appended record\n", kRecord) == kRecord, "append failed");
  fstat(append_fd, &st);
  v.Expect(st.st_size == static_cast<off_t>((records + 1) * kRecord),
           "a write through the append fd did not append");
  CompareIdentity(before, ReadIdentity(), v);
  v.Note("reads=%" PRIu64 " offset=%lld records=%" PRIu64 " groups=%zu bounding=%" PRIx64, reads,
         (long long)expected, records, before.groups.size(), before.bounding);
  v.Finish();
}
