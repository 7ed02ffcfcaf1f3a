// memory: 64 MiB of private anonymous memory filled with random data (seeded
// from /dev/urandom), a checksum of it kept in a variable and, again, in a
// page of its own; one page is rewritten with new data every 10 ms and both
// copies of the checksum follow. A further 16 MiB mapping is never written.
// Verdict: the checksum recomputed from the data matches both copies, and the
// unwritten mapping still reads as zeros.
#include <sys/mman.h>

#include <cinttypes>
#include <cstddef>
#include <cstdint>

#include "tests/e2e/programs/common.h"

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kSize = size_t{64} << 20;
constexpr size_t kPages = kSize / kPage;
constexpr size_t kHoleSize = size_t{16} << 20;

uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// An xxhash-like hash of page INDEX of AREA: depends on every word and its
// position, and on the page's index.
uint64_t PageHash(const uint64_t* area, size_t index) {
  const uint64_t* words = area + index * (kPage / 8);
  uint64_t h = 0x27d4eb2f165667c5ULL ^ (index * 0x9e3779b97f4a7c15ULL);
  for (size_t i = 0; i < kPage / 8; ++i) {
    h = Rotl(h ^ (words[i] * 0xc2b2ae3d27d4eb4fULL), 31) * 0x9e3779b97f4a7c15ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 33);
}

uint64_t Checksum(const uint64_t* area) {
  uint64_t sum = 0;
  for (size_t i = 0; i < kPages; ++i) sum += PageHash(area, i);
  return sum;
}

void FillPage(uint64_t* area, size_t index, crpp::e2e::Random& random) {
  uint64_t* words = area + index * (kPage / 8);
  for (size_t i = 0; i < kPage / 8; ++i) words[i] = random.Next();
}

void* MapAnon(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) crpp::e2e::Die("mmap");
  return p;
}

uint64_t g_checksum = 0;

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "memory");
  auto* area = static_cast<uint64_t*>(MapAnon(kSize));
  auto* hole = static_cast<const uint64_t*>(MapAnon(kHoleSize));
  auto* checksum_page = static_cast<volatile uint64_t*>(MapAnon(kPage));
  crpp::e2e::Random random(crpp::e2e::UrandomSeed());
  for (size_t i = 0; i < kPages; ++i) FillPage(area, i, random);
  g_checksum = Checksum(area);
  *checksum_page = g_checksum;
  crpp::e2e::Ready();

  uint64_t rewritten = 0;
  while (!crpp::e2e::g_verify_requested) {
    size_t index = (rewritten * 7919) % kPages;
    uint64_t old_hash = PageHash(area, index);
    FillPage(area, index, random);
    g_checksum += PageHash(area, index) - old_hash;
    *checksum_page = g_checksum;
    ++rewritten;
    crpp::e2e::SleepMs(10);
  }

  crpp::e2e::Verdict v;
  const uint64_t actual = Checksum(area);
  v.Expect(actual == g_checksum, "data checksum %016" PRIx64 " != variable %016" PRIx64, actual,
           g_checksum);
  v.Expect(actual == *checksum_page, "data checksum %016" PRIx64 " != copy in page %016" PRIx64,
           actual, *checksum_page);
  size_t nonzero = 0;
  for (size_t i = 0; i < kHoleSize / 8; ++i) nonzero += hole[i] != 0;
  v.Expect(nonzero == 0, "%zu words of the never-written mapping are not zero", nonzero);
  v.Note("checksum=%016" PRIx64 " pages=%zu rewritten=%" PRIu64, actual, kPages, rewritten);
  v.Finish();
}
