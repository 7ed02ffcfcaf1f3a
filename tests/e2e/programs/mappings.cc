// mappings: memory mappings other than plain private anonymous memory.
// - OUTDIR/shared.map (64 KiB) mapped MAP_SHARED, its fd closed: every 10 ms
//   the loop writes an increasing counter into word 0 and into one of its
//   pages in turn;
// - OUTDIR/private.map (4 pages) mapped MAP_PRIVATE and written in page 1
//   only (copy-on-write);
// - 3 anonymous pages holding a pattern, then mprotect'ed read-only;
// - 3 anonymous pages whose middle one, holding data, is mprotect'ed
//   PROT_NONE (a guard).
// Verdict: the shared mapping and the file (re-opened by path, read with
// pread) agree, and writes go both ways; the private mapping has our page 1
// and the file's other pages while the file is unchanged; patterns are
// intact; /proc/self/maps shows r--p, rw-p/---p/rw-p, and mincore finds the
// guard page still mapped.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/e2e/programs/common.h"

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kSharedSize = 16 * kPage;
constexpr size_t kPrivatePages = 4;

void FillPattern(void* p, size_t size, uint64_t seed) {
  crpp::e2e::Random random(seed);
  auto* words = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < size / 8; ++i) words[i] = random.Next();
}

bool PatternIntact(const void* p, size_t size, uint64_t seed) {
  std::vector<uint64_t> want(size / 8);
  FillPattern(want.data(), size, seed);
  return memcmp(p, want.data(), size) == 0;
}

void* MapFile(const std::string& path, size_t size, int flags, uint64_t seed) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) crpp::e2e::Die(path.c_str());
  std::vector<uint64_t> content(size / 8);
  FillPattern(content.data(), size, seed);
  if (write(fd, content.data(), size) != static_cast<ssize_t>(size)) crpp::e2e::Die("write");
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (p == MAP_FAILED) crpp::e2e::Die("mmap file");
  close(fd);
  return p;
}

void* MapAnon(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) crpp::e2e::Die("mmap");
  return p;
}

// The file at PATH, read with pread.
std::vector<uint64_t> ReadFile(const std::string& path, size_t size) {
  std::vector<uint64_t> words(size / 8);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || pread(fd, words.data(), size, 0) != static_cast<ssize_t>(size)) words.clear();
  if (fd >= 0) close(fd);
  return words;
}

void CheckShared(volatile uint64_t* shared, const std::string& path, uint64_t counter,
                 crpp::e2e::Verdict& v) {
  std::vector<uint64_t> file = ReadFile(path, kSharedSize);
  if (!v.Expect(!file.empty(), "cannot read %s", path.c_str())) return;
  v.Expect(shared[0] == counter, "shared mapping holds %" PRIu64 ", the counter is %" PRIu64,
           shared[0], counter);
  v.Expect(memcmp(file.data(), const_cast<uint64_t*>(shared), kSharedSize) == 0,
           "the file and the shared mapping differ (file word 0: %" PRIu64 ")", file[0]);
  // Both directions, now: mapping -> file and file -> mapping.
  shared[0] = counter + 1000;
  file = ReadFile(path, kSharedSize);
  v.Expect(!file.empty() && file[0] == counter + 1000, "a write to the mapping missed the file");
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  const uint64_t poke = 0x5eedf00d;
  v.Expect(fd >= 0 && pwrite(fd, &poke, 8, 8) == 8, "cannot pwrite %s", path.c_str());
  if (fd >= 0) close(fd);
  v.Expect(shared[1] == poke, "a write to the file missed the mapping");
}

void CheckPrivate(const uint8_t* priv, const std::string& path, uint64_t seed, uint64_t cow_seed,
                  crpp::e2e::Verdict& v) {
  std::vector<uint64_t> file = ReadFile(path, kPrivatePages * kPage);
  std::vector<uint64_t> original(kPrivatePages * kPage / 8);
  FillPattern(original.data(), kPrivatePages * kPage, seed);
  v.Expect(file == original, "%s changed on disk", path.c_str());
  for (size_t page = 0; page < kPrivatePages; ++page) {
    const uint8_t* p = priv + page * kPage;
    if (page == 1) {
      v.Expect(PatternIntact(p, kPage, cow_seed), "the written private page lost its data");
    } else {
      v.Expect(memcmp(p, original.data() + page * kPage / 8, kPage) == 0,
               "private page %zu differs from the file", page);
    }
  }
}

void CheckProtections(const uint8_t* readonly, uint8_t* guarded, uint64_t seed,
                      crpp::e2e::Verdict& v) {
  const std::string ro = crpp::e2e::MapsPerms(readonly);
  v.Expect(ro == "r--p", "the read-only region is %s", ro.c_str());
  v.Expect(PatternIntact(readonly, 3 * kPage, seed), "the read-only pattern changed");
  const std::string before = crpp::e2e::MapsPerms(guarded);
  const std::string guard = crpp::e2e::MapsPerms(guarded + kPage);
  const std::string after = crpp::e2e::MapsPerms(guarded + 2 * kPage);
  v.Expect(before == "rw-p" && guard == "---p" && after == "rw-p",
           "the guarded region is %s/%s/%s, want rw-p/---p/rw-p", before.c_str(), guard.c_str(),
           after.c_str());
  unsigned char resident = 0;
  v.Expect(mincore(guarded + kPage, kPage, &resident) == 0, "mincore: the guard page is unmapped");
  v.Expect(PatternIntact(guarded, kPage, seed + 1) &&
               PatternIntact(guarded + 2 * kPage, kPage, seed + 2),
           "the pages around the guard changed");
  // The PROT_NONE page held data before it was protected: it must survive.
  if (mprotect(guarded + kPage, kPage, PROT_READ) == 0) {
    v.Expect(PatternIntact(guarded + kPage, kPage, seed + 3),
             "the data in the PROT_NONE page changed");
  } else {
    v.Expect(false, "mprotect of the PROT_NONE page failed");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = crpp::e2e::Setup(argc, argv, "mappings");
  const uint64_t seed = crpp::e2e::UrandomSeed();
  const std::string shared_path = dir + "/shared.map";
  const std::string private_path = dir + "/private.map";
  auto* shared =
      static_cast<volatile uint64_t*>(MapFile(shared_path, kSharedSize, MAP_SHARED, seed + 10));
  auto* priv =
      static_cast<uint8_t*>(MapFile(private_path, kPrivatePages * kPage, MAP_PRIVATE, seed + 20));
  FillPattern(priv + kPage, kPage, seed + 21);

  auto* readonly = static_cast<uint8_t*>(MapAnon(3 * kPage));
  FillPattern(readonly, 3 * kPage, seed);
  if (mprotect(readonly, 3 * kPage, PROT_READ) != 0) crpp::e2e::Die("mprotect");
  auto* guarded = static_cast<uint8_t*>(MapAnon(3 * kPage));
  FillPattern(guarded, kPage, seed + 1);
  FillPattern(guarded + kPage, kPage, seed + 3);
  FillPattern(guarded + 2 * kPage, kPage, seed + 2);
  if (mprotect(guarded + kPage, kPage, PROT_NONE) != 0) crpp::e2e::Die("mprotect");
  crpp::e2e::Ready();

  uint64_t counter = 0;
  while (!crpp::e2e::g_verify_requested) {
    ++counter;
    shared[0] = counter;
    shared[(counter % 16) * (kPage / 8) + 2] = counter;
    crpp::e2e::SleepMs(10);
  }

  crpp::e2e::Verdict v;
  CheckShared(shared, shared_path, counter, v);
  CheckPrivate(priv, private_path, seed + 20, seed + 21, v);
  CheckProtections(readonly, guarded, seed, v);
  v.Note("counter=%" PRIu64 " shared=%s", counter, shared_path.c_str());
  v.Finish();
}
