// shmem: shared memory between two processes.
//   A memfd "crpp-shared" of 1 MiB (data in its first 3 pages and at 512 KiB,
//     a hole between), held by the root and its child through one description
//     (offset 1234) and mapped MAP_SHARED by both;
//   a shared anonymous mapping of 256 KiB, filled with a pattern, inherited;
//   a sealed memfd "crpp-sealed" holding "hello" (F_SEAL_SHRINK|F_SEAL_GROW).
// Verdict: the child checks the data it sees in both mappings and writes new
// values into each; the root sees the child's writes (one object, not two
// copies), the memfd keeps its name, size, hole, offset and seals.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <climits>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

using crpp::e2e::ReadLine;
using crpp::e2e::WriteLine;

constexpr size_t kMemfdSize = 1 << 20, kAnonSize = 256 << 10, kFar = 512 << 10;

uint8_t Pattern(size_t i, uint8_t salt) { return static_cast<uint8_t>((i * 13 + salt) & 0xff); }

bool Holds(const uint8_t* p, size_t from, size_t n, uint8_t salt) {
  for (size_t i = from; i < from + n; ++i) {
    if (p[i] != Pattern(i, salt)) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "shmem");
  int shared = memfd_create("crpp-shared", MFD_ALLOW_SEALING);
  int sealed = memfd_create("crpp-sealed", MFD_ALLOW_SEALING);
  if (shared < 0 || sealed < 0 || ftruncate(shared, kMemfdSize) != 0) crpp::e2e::Die("memfd");
  auto* mem = static_cast<uint8_t*>(
      mmap(nullptr, kMemfdSize, PROT_READ | PROT_WRITE, MAP_SHARED, shared, 0));
  auto* anon = static_cast<uint8_t*>(
      mmap(nullptr, kAnonSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED || anon == MAP_FAILED) crpp::e2e::Die("mmap");
  for (size_t i = 0; i < 3 * 4096; ++i) mem[i] = Pattern(i, 1);
  for (size_t i = kFar; i < kFar + 4096; ++i) mem[i] = Pattern(i, 1);
  for (size_t i = 0; i < kAnonSize; ++i) anon[i] = Pattern(i, 2);
  if (write(sealed, "hello", 5) != 5 ||
      fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    crpp::e2e::Die("sealed memfd");
  }
  lseek(shared, 1234, SEEK_SET);
  int ask[2], answer[2];
  if (pipe(ask) != 0 || pipe(answer) != 0) crpp::e2e::Die("pipe");
  const pid_t root = getpid();
  pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    ReadLine(ask[0]);
    std::string problems;
    if (!Holds(mem, 0, 3 * 4096, 1) || !Holds(mem, kFar, 4096, 1)) problems += "memfd data; ";
    if (!Holds(anon, 0, kAnonSize, 2)) problems += "anonymous data; ";
    if (lseek(shared, 0, SEEK_CUR) != 1234) problems += "memfd offset; ";
    for (size_t i = 0; i < 4096; ++i) mem[8192 + i] = Pattern(i, 7);
    for (size_t i = 0; i < 4096; ++i) anon[65536 + i] = Pattern(i, 8);
    WriteLine(answer[1], problems.empty() ? "OK" : "FAIL child: " + problems);
    _exit(0);
  }
  crpp::e2e::Ready();
  const uint64_t ticks = crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  WriteLine(ask[1], "check");
  const std::string said = ReadLine(answer[0]);
  v.Expect(said == "OK", "%s", said.c_str());
  bool memfd_write = true, anon_write = true;
  for (size_t i = 0; i < 4096; ++i) {
    memfd_write &= mem[8192 + i] == Pattern(i, 7);
    anon_write &= anon[65536 + i] == Pattern(i, 8);
  }
  v.Expect(memfd_write, "the child's write to the memfd mapping does not show in the root's");
  v.Expect(anon_write, "the child's write to the shared anonymous mapping does not show");
  v.Expect(Holds(mem, 0, 8192, 1) && Holds(mem, kFar, 4096, 1), "the root's memfd data changed");
  char link[PATH_MAX] = {};
  readlink(("/proc/self/fd/" + std::to_string(shared)).c_str(), link, sizeof link - 1);
  v.Expect(strcmp(link, "/memfd:crpp-shared (deleted)") == 0, "the memfd is %s", link);
  v.Expect(lseek(shared, 0, SEEK_END) == static_cast<off_t>(kMemfdSize),
           "the memfd's size changed");
  v.Expect(lseek(shared, 3 * 4096, SEEK_HOLE) == 3 * 4096, "the memfd's hole is gone");
  char buf[8] = {};
  v.Expect(pread(sealed, buf, sizeof buf, 0) == 5 && memcmp(buf, "hello", 5) == 0,
           "the sealed memfd holds \"%s\"", buf);
  const int seals = fcntl(sealed, F_GET_SEALS);
  v.Expect(seals == (F_SEAL_SHRINK | F_SEAL_GROW), "the sealed memfd's seals are %#x", seals);
  v.Expect(ftruncate(sealed, 100) != 0, "a sealed memfd could grow");
  int st = 0;
  v.Expect(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "the child did not exit with status 0");
  v.Note("ticks=%" PRIu64 " child=%d", ticks, child);
  v.Finish();
}
