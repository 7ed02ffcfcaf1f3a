#define BOOST_TEST_MODULE blob
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "parasite/blob_loader.h"
#include "tests/parasite/test_blob.h"

namespace {

namespace tb = crpp::blobs::test_blob;

constexpr size_t kPage = 4096;

size_t PageAlign(size_t n) { return (n + kPage - 1) & ~(kPage - 1); }

// A blob loaded into its own mapping, executable and read-only once loaded
// (the test blob writes no globals, so RX is enough).
class LoadedBlob {
 public:
  LoadedBlob() : size_(PageAlign(tb::kMemSize)) {
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    BOOST_REQUIRE(p != MAP_FAILED);
    base_ = static_cast<unsigned char*>(p);
    // Garbage where the bss goes, so that the test sees LoadBlob zero it.
    std::memset(base_, 0xff, size_);
    auto loaded = crpp::LoadBlob(base_, size_, tb::kBlob);
    BOOST_REQUIRE_MESSAGE(loaded.ok(), loaded.status().message());
    BOOST_REQUIRE(*loaded == base_);
    BOOST_REQUIRE(mprotect(base_, size_, PROT_READ | PROT_EXEC) == 0);
  }
  ~LoadedBlob() { munmap(base_, size_); }

  template <class Fn>
  Fn* Entry(size_t offset) const {
    return reinterpret_cast<Fn*>(base_ + offset);
  }
  const unsigned char* base() const { return base_; }

 private:
  size_t size_;
  unsigned char* base_ = nullptr;
};

using AddFn = long(long, long);
using ApplyFn = long(unsigned, long, long);
using GreetingFn = const char*();
using WriteFn = long(int, const char*, unsigned long);
using SumFn = long();

}  // namespace

BOOST_AUTO_TEST_CASE(header_describes_the_image) {
  BOOST_TEST(tb::kImageSize == sizeof(tb::kImage));
  BOOST_TEST(tb::kMemSize >= tb::kImageSize);
  BOOST_TEST(tb::kMemSize - tb::kImageSize >= 64 * sizeof(long));  // test_bss_words
  BOOST_TEST(tb::kEntry_test_add < tb::kImageSize);
  // The table of three function pointers and the greeting pointer.
  BOOST_TEST(tb::kRelocations.size() >= 4u);
  for (size_t off : tb::kRelocations) BOOST_TEST(off + 8 <= tb::kImageSize);
}

BOOST_AUTO_TEST_CASE(entries_run_where_the_blob_was_loaded) {
  LoadedBlob blob;
  BOOST_TEST(blob.Entry<AddFn>(tb::kEntry_test_add)(40, 2) == 42);
  // Calls through the relocated table of function pointers.
  auto apply = blob.Entry<ApplyFn>(tb::kEntry_test_apply);
  BOOST_TEST(apply(0, 6, 7) == 13);
  BOOST_TEST(apply(1, 6, 7) == -1);
  BOOST_TEST(apply(2, 6, 7) == 42);
  BOOST_TEST(apply(3, 6, 7) == -1);
  BOOST_TEST(blob.Entry<SumFn>(tb::kEntry_test_bss_sum)() == 0);
}

BOOST_AUTO_TEST_CASE(relocated_pointers_point_into_the_copy) {
  LoadedBlob blob;
  const char* greeting = blob.Entry<GreetingFn>(tb::kEntry_test_greeting)();
  BOOST_TEST(reinterpret_cast<uintptr_t>(greeting) >= reinterpret_cast<uintptr_t>(blob.base()));
  BOOST_TEST(reinterpret_cast<uintptr_t>(greeting) <
             reinterpret_cast<uintptr_t>(blob.base()) + tb::kImageSize);
  BOOST_TEST(std::string(greeting) == "hello from a blob\n");
}

BOOST_AUTO_TEST_CASE(two_copies_are_independent) {
  LoadedBlob first;
  LoadedBlob second;
  auto g1 = first.Entry<GreetingFn>(tb::kEntry_test_greeting)();
  auto g2 = second.Entry<GreetingFn>(tb::kEntry_test_greeting)();
  BOOST_TEST(g2 - g1 == second.base() - first.base());
  BOOST_TEST(second.Entry<ApplyFn>(tb::kEntry_test_apply)(2, 3, 5) == 15);
}

BOOST_AUTO_TEST_CASE(raw_write_syscall) {
  LoadedBlob blob;
  int fds[2];
  BOOST_REQUIRE(pipe(fds) == 0);
  auto write_fn = blob.Entry<WriteFn>(tb::kEntry_test_write);
  BOOST_TEST(write_fn(fds[1], "ping", 4) == 4);
  char buf[8] = {};
  BOOST_TEST(read(fds[0], buf, sizeof(buf)) == 4);
  BOOST_TEST(std::string(buf) == "ping");
  // Errors come back as -errno: the blob has no errno.
  BOOST_TEST(write_fn(-1, "x", 1) == -EBADF);
  close(fds[0]);
  close(fds[1]);
}

BOOST_AUTO_TEST_CASE(load_checks_the_destination) {
  alignas(64) static unsigned char buffer[1 << 16];
  auto too_small = crpp::LoadBlob(buffer, tb::kMemSize - 1, tb::kBlob);
  BOOST_TEST(!too_small.ok());
  if (tb::kAlign > 1) {
    auto misaligned = crpp::LoadBlob(buffer + 1, sizeof(buffer) - 1, tb::kBlob);
    BOOST_TEST(!misaligned.ok());
  }
  BOOST_TEST(!crpp::LoadBlob(nullptr, sizeof(buffer), tb::kBlob).ok());
  crpp::BlobImage bad = tb::kBlob;
  static constexpr size_t kOutside[] = {tb::kImageSize - 4};
  bad.relocations = kOutside;
  BOOST_TEST(!crpp::LoadBlob(buffer, sizeof(buffer), bad).ok());
}

// LoadBlobAt: the copy here, relocated for the address it will run at.
BOOST_AUTO_TEST_CASE(load_at_relocates_for_another_address) {
  alignas(64) static unsigned char here[1 << 16];
  constexpr std::uint64_t kThere = 0x7f0000100000;
  BOOST_REQUIRE(crpp::LoadBlobAt(here, sizeof(here), tb::kBlob, kThere).ok());
  for (size_t off : tb::kRelocations) {
    std::uint64_t word, link;
    std::memcpy(&word, here + off, sizeof(word));
    std::memcpy(&link, tb::kImage + off, sizeof(link));
    BOOST_TEST(word == kThere + link);
  }
  // The alignment that matters is the run-time address's.
  if (tb::kAlign > 1) {
    BOOST_TEST(!crpp::LoadBlobAt(here, sizeof(here), tb::kBlob, kThere + 1).ok());
  }
}
