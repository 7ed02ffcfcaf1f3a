// cow_memory: private memory a fork left shared copy-on-write, in a tree of
// three (the program, its child, the child's child).
// Setup: the program fills 64 MiB of private anonymous memory (every page
// its own pattern) and writes the first 32 of 64 pages of a private mapping
// of the file OUTDIR/cow_file, then forks the child. After the fork each
// process writes its own version of 4 pages and drops 4 others
// (MADV_DONTNEED: they read as zero) of the anonymous area, and writes one
// page of the file mapping of its own; the child does so before it forks the
// grandchild, which starts with the child's changes. "ready" comes once all
// three are done.
// Verdict, in each process while all three live (the program first, then
// the child, then the grandchild): /proc/self/smaps says the pages nobody
// changed are shared again (at most 24 pages of the anonymous area and 3 of
// the written file pages are the process's alone), and every page holds
// exactly what the process wrote or inherited, zeros where it dropped
// pages, the file's data where nobody wrote.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

using crpp::e2e::ReadLine;
using crpp::e2e::WriteLine;

constexpr size_t kPage = 4096, kWords = kPage / 8;
constexpr size_t kAnonPages = 16384;  // 64 MiB
constexpr size_t kFilePages = 64, kFileWritten = 32;
// Who wrote a page: the program at setup, then each process after the fork;
// kFileData is what the file itself holds.
enum Version : uint64_t { kOriginal = 1, kRoot, kChild, kGrandchild, kFileData };
// The anonymous pages each process writes and drops after the fork.
constexpr size_t kRootWrites = 0, kRootDrops = 4, kChildWrites = 8, kChildDrops = 12,
                 kGrandWrites = 16, kGrandDrops = 20, kChanged = 4;

uint64_t Word(size_t page, size_t i, uint64_t version) {
  uint64_t z = (page * kWords + i) * 0x9e3779b97f4a7c15ULL + version * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 31)) * 0x94d049bb133111ebULL;
  return (z ^ (z >> 29)) | 1;  // never a zero word: zero means "dropped"
}

void WritePage(uint8_t* base, size_t page, uint64_t version) {
  auto* w = reinterpret_cast<uint64_t*>(base + page * kPage);
  for (size_t i = 0; i < kWords; ++i) w[i] = Word(page, i, version);
}

bool Holds(const uint8_t* base, size_t page, uint64_t version) {
  const auto* w = reinterpret_cast<const uint64_t*>(base + page * kPage);
  for (size_t i = 0; i < kWords; ++i) {
    if (w[i] != (version == 0 ? 0 : Word(page, i, version))) return false;
  }
  return true;
}

void ChangeAnon(uint8_t* anon, size_t writes, size_t drops, uint64_t version) {
  for (size_t p = writes; p < writes + kChanged; ++p) WritePage(anon, p, version);
  if (madvise(anon + drops * kPage, kChanged * kPage, MADV_DONTNEED) != 0) {
    crpp::e2e::Die("madvise(MADV_DONTNEED)");
  }
}

bool In(size_t p, size_t from) { return p >= from && p < from + kChanged; }

// What page P of the anonymous area holds in each process (0: zeros).
uint64_t AnonWant(int who, size_t p) {
  if (who == 0) return In(p, kRootWrites) ? kRoot : In(p, kRootDrops) ? 0 : kOriginal;
  if (In(p, kChildWrites)) return kChild;
  if (In(p, kChildDrops)) return 0;
  if (who == 2 && In(p, kGrandWrites)) return kGrandchild;
  if (who == 2 && In(p, kGrandDrops)) return 0;
  return kOriginal;
}

// Process WHO writes file page WHO with its own version.
uint64_t FileWant(int who, size_t p) {
  if (p >= kFileWritten) return kFileData;
  if (p == 0 && who == 0) return kRoot;
  if (p == 1 && who >= 1) return kChild;
  if (p == 2 && who == 2) return kGrandchild;
  return kOriginal;
}

// Shared and private dirty kB of the mapping at ADDR, from smaps.
struct Usage {
  uint64_t shared_kb = 0, private_kb = 0;
  bool found = false;
};

Usage Smaps(const void* addr) {
  Usage u;
  std::ifstream in("/proc/self/smaps");
  bool mine = false;
  const auto a = reinterpret_cast<uint64_t>(addr);
  for (std::string line; std::getline(in, line);) {
    unsigned long long s = 0, e = 0;
    char dash = 0;
    if (sscanf(line.c_str(), "%llx%c%llx", &s, &dash, &e) == 3 && dash == '-' &&
        line.find(' ') > line.find('-')) {
      mine = a >= s && a < e;
      u.found |= mine;
      continue;
    }
    unsigned long long kb = 0;
    if (mine && sscanf(line.c_str(), "Shared_Dirty: %llu kB", &kb) == 1) u.shared_kb = kb;
    if (mine && sscanf(line.c_str(), "Private_Dirty: %llu kB", &kb) == 1) u.private_kb = kb;
  }
  return u;
}

// The checks of process WHO (0: the program, 1: the child, 2: the
// grandchild) into V.
void Check(int who, const uint8_t* anon, const uint8_t* file, crpp::e2e::Verdict& v) {
  static const char* const kNames[] = {"program", "child", "grandchild"};
  const char* name = kNames[who];
  // Sharing first: reading the file's own pages below maps them too.
  const Usage a = Smaps(anon), f = Smaps(file);
  v.Expect(a.found && f.found, "%s: a mapping is missing from smaps", name);
  v.Expect(a.private_kb <= 6 * kChanged * kPage / 1024,
           "%s: %" PRIu64 " kB of the anonymous area are private", name, a.private_kb);
  v.Expect(a.shared_kb >= (kAnonPages - 6 * kChanged) * kPage / 1024,
           "%s: only %" PRIu64 " kB of the anonymous area are shared", name, a.shared_kb);
  v.Expect(f.private_kb <= 3 * kPage / 1024,
           "%s: %" PRIu64 " kB of the written file pages are private", name, f.private_kb);
  v.Expect(f.shared_kb >= (kFileWritten - 3) * kPage / 1024,
           "%s: only %" PRIu64 " kB of the written file pages are shared", name, f.shared_kb);
  size_t bad = 0, first = 0;
  for (size_t p = 0; p < kAnonPages; ++p) {
    if (!Holds(anon, p, AnonWant(who, p)) && bad++ == 0) first = p;
  }
  v.Expect(bad == 0, "%s: %zu anonymous pages hold the wrong data (page %zu first)", name, bad,
           first);
  bad = 0;
  for (size_t p = 0; p < kFilePages; ++p) {
    if (!Holds(file, p, FileWant(who, p)) && bad++ == 0) first = p;
  }
  v.Expect(bad == 0, "%s: %zu file pages hold the wrong data (page %zu first)", name, bad, first);
  v.Note("%s=%" PRIu64 "/%" PRIu64 "kB", name, a.shared_kb, a.private_kb);
}

// Takes the answer of the process below ("OK notes" or "FAIL what") into V.
void TakeAnswer(const std::string& line, crpp::e2e::Verdict& v) {
  if (line.rfind("OK ", 0) == 0) {
    v.Note("%s", line.c_str() + 3);
  } else {
    v.Expect(false, "%s", line.rfind("FAIL ", 0) == 0 ? line.c_str() + 5 : line.c_str());
  }
}

// The child (WHO 1) and the grandchild (WHO 2): change their pages, say
// "set" on UP_ANSWER, then on "check" from UP_ASK check themselves, ask the
// process below, and answer. The child forks the grandchild in between.
[[noreturn]] void Descendant(int who, uint8_t* anon, uint8_t* file, int up_ask, int up_answer) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (who == 1) {
    ChangeAnon(anon, kChildWrites, kChildDrops, kChild);
    WritePage(file, 1, kChild);
  } else {
    ChangeAnon(anon, kGrandWrites, kGrandDrops, kGrandchild);
    WritePage(file, 2, kGrandchild);
  }
  int ask[2] = {-1, -1}, answer[2] = {-1, -1};
  pid_t grandchild = -1;
  if (who == 1) {
    if (pipe(ask) != 0 || pipe(answer) != 0) _exit(2);
    const pid_t me = getpid();
    grandchild = fork();
    if (grandchild < 0) _exit(2);
    if (grandchild == 0) {
      if (getppid() != me) _exit(0);
      Descendant(2, anon, file, ask[0], answer[1]);
    }
    if (ReadLine(answer[0]) != "set") _exit(2);
  }
  WriteLine(up_answer, "set");
  if (ReadLine(up_ask) != "check") _exit(0);
  crpp::e2e::Verdict v;
  Check(who, anon, file, v);
  if (who == 1) {
    WriteLine(ask[1], "check");
    TakeAnswer(ReadLine(answer[0]), v);
    int st = 0;
    v.Expect(waitpid(grandchild, &st, 0) == grandchild && WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "the grandchild did not exit with status 0");
  }
  WriteLine(up_answer, v.ok() ? "OK " + v.notes() : "FAIL " + v.failures());
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "cow_memory");
  auto* anon = static_cast<uint8_t*>(mmap(nullptr, kAnonPages * kPage, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (anon == MAP_FAILED) crpp::e2e::Die("mmap");
  // Huge pages would make "a page" 2 MiB: the counts below are of 4 KiB ones.
  madvise(anon, kAnonPages * kPage, MADV_NOHUGEPAGE);
  for (size_t p = 0; p < kAnonPages; ++p) WritePage(anon, p, kOriginal);

  const std::string path = out + "/cow_file";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) crpp::e2e::Die("open cow_file");
  {
    std::string data(kFilePages * kPage, '\0');
    for (size_t p = 0; p < kFilePages; ++p)
      WritePage(reinterpret_cast<uint8_t*>(&data[0]), p, kFileData);
    if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
      crpp::e2e::Die("write cow_file");
    }
  }
  auto* file = static_cast<uint8_t*>(
      mmap(nullptr, kFilePages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  if (file == MAP_FAILED) crpp::e2e::Die("mmap cow_file");
  close(fd);
  for (size_t p = 0; p < kFileWritten; ++p) WritePage(file, p, kOriginal);

  int ask[2], answer[2];
  if (pipe(ask) != 0 || pipe(answer) != 0) crpp::e2e::Die("pipe");
  const pid_t root = getpid();
  const pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) {
    if (getppid() != root) _exit(0);
    Descendant(1, anon, file, ask[0], answer[1]);
  }
  ChangeAnon(anon, kRootWrites, kRootDrops, kRoot);
  WritePage(file, 0, kRoot);
  if (ReadLine(answer[0]) != "set") crpp::e2e::Die("the child's setup");
  crpp::e2e::Ready();
  const uint64_t ticks = crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  Check(0, anon, file, v);
  WriteLine(ask[1], "check");
  TakeAnswer(ReadLine(answer[0]), v);
  int st = 0;
  v.Expect(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "the child did not exit with status 0");
  v.Note("ticks=%" PRIu64, ticks);
  v.Finish();
}
