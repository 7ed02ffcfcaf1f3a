// Probes of the memory interfaces: map_files, memfd, pagemap (and its
// PAGEMAP_SCAN ioctl), soft-dirty, userfaultfd, AIO ring remapping, vmsplice.
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/memfd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

// Newer than the 6.1 headers we build against.
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

namespace crpp::kerndat::internal {
namespace {

// PAGEMAP_SCAN (Linux 6.7), declared here because our headers predate it.
struct PageRegion {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};
struct PmScanArg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr uint64_t kPmScanWpMatching = 1 << 0;
constexpr uint64_t kPmScanCheckWpasync = 1 << 1;
constexpr uint64_t kPageIsWritten = 1 << 1;
constexpr uint64_t kPageIsPresent = 1 << 3;

constexpr uint64_t kPmePresent = uint64_t{1} << 63;
constexpr uint64_t kPmeSoftDirty = uint64_t{1} << 55;
constexpr uint64_t kPmePfnMask = (uint64_t{1} << 55) - 1;

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// An anonymous private mapping, unmapped when it goes out of scope.
class Mapping {
 public:
  Mapping(size_t len, int flags = MAP_PRIVATE | MAP_ANONYMOUS) : len_(len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, flags, -1, 0);
    addr_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Mapping() {
    if (addr_ != nullptr) munmap(addr_, len_);
  }
  char* addr() const { return addr_; }
  uintptr_t at(size_t offset) const { return reinterpret_cast<uintptr_t>(addr_) + offset; }

 private:
  char* addr_ = nullptr;
  size_t len_;
};

// Scans [start, end) of our own address space; returns the regions found or -errno.
long Scan(int pagemap, uintptr_t start, uintptr_t end, uint64_t flags, uint64_t mask,
          PageRegion* regions, size_t nr) {
  PmScanArg arg{};
  arg.size = sizeof(arg);
  arg.flags = flags;
  arg.start = start;
  arg.end = end;
  arg.vec = reinterpret_cast<uintptr_t>(regions);
  arg.vec_len = nr;
  arg.category_mask = mask;
  arg.return_mask = mask;
  long n = ioctl(pagemap, kPagemapScan, &arg);
  return n < 0 ? -errno : n;
}

// "pages 1 and 3 of 4": checks that `regions` are exactly the given pages.
bool RegionsArePages(const PageRegion* regions, long n, const Mapping& m,
                     std::initializer_list<size_t> pages) {
  const size_t ps = PageSize();
  if (n != static_cast<long>(pages.size())) return false;
  size_t i = 0;
  for (size_t page : pages) {
    if (regions[i].start != m.at(page * ps) || regions[i].end != m.at((page + 1) * ps)) {
      return false;
    }
    ++i;
  }
  return true;
}

// A userfaultfd: through the syscall, or /dev/userfaultfd when the syscall is
// refused (vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE).
int OpenUffd(std::string* err) {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd >= 0) return fd;
  int first = errno;
  fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
  if (fd >= 0) return fd;
  Fd dev(open("/dev/userfaultfd", O_RDWR | O_CLOEXEC));
  if (dev.valid()) {
    fd = ioctl(dev.get(), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) return fd;
  }
  *err = ErrnoText("userfaultfd", first);
  return -1;
}

// Opens a userfaultfd and does the UFFDIO_API handshake asking for `features`.
// Returns the fd (and the features the kernel offers in *offered) or -1.
int UffdWithFeatures(uint64_t features, uint64_t* offered, std::string* err) {
  Fd fd(OpenUffd(err));
  if (!fd.valid()) return -1;
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (ioctl(fd.get(), UFFDIO_API, &api) != 0) {
    *err = ErrnoText(absl::StrFormat("UFFDIO_API(features %#x)", features), errno);
    return -1;
  }
  *offered = api.features;
  return fd.Release();
}

}  // namespace

Result ProbeMapFiles() {
  Mapping m(PageSize(), MAP_SHARED | MAP_ANONYMOUS);
  if (m.addr() == nullptr) return FailErrno("mmap", errno);
  std::string path = absl::StrFormat("/proc/self/map_files/%lx-%lx", m.at(0), m.at(PageSize()));
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return FailErrno(path, errno);
  char target[256] = {};
  ssize_t n = readlink(path.c_str(), target, sizeof(target) - 1);
  if (n < 0) return FailErrno("readlink " + path, errno);
  return Ok(absl::StrCat("a shared anonymous mapping links to ",
                         absl::string_view(target, static_cast<size_t>(n))));
}

Result ProbeMemfd() {
  Fd fd(
      static_cast<int>(syscall(SYS_memfd_create, "crpp-kerndat", MFD_CLOEXEC | MFD_ALLOW_SEALING)));
  if (!fd.valid()) return FailErrno("memfd_create", errno);
  if (ftruncate(fd.get(), static_cast<off_t>(PageSize())) != 0)
    return FailErrno("ftruncate", errno);
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) != 0) {
    return FailErrno("F_ADD_SEALS", errno);
  }
  int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) return FailErrno("F_GET_SEALS", errno);
  if ((seals & (F_SEAL_GROW | F_SEAL_SHRINK)) != (F_SEAL_GROW | F_SEAL_SHRINK)) {
    return Fail("the seals set are not reported back");
  }
  return Ok("memfd_create with sealing");
}

Result ProbeMemfdHugetlb() {
  Fd fd(
      static_cast<int>(syscall(SYS_memfd_create, "crpp-kerndat-huge", MFD_CLOEXEC | MFD_HUGETLB)));
  if (!fd.valid()) return FailErrno("memfd_create(MFD_HUGETLB)", errno);
  return Ok();
}

Result ProbePagemap() {
  Fd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return FailErrno("/proc/self/pagemap", errno);
  Mapping m(PageSize());
  if (m.addr() == nullptr) return FailErrno("mmap", errno);
  m.addr()[0] = 1;
  uint64_t entry = 0;
  off_t off = static_cast<off_t>(m.at(0) / PageSize() * sizeof(entry));
  if (pread(fd.get(), &entry, sizeof(entry), off) != static_cast<ssize_t>(sizeof(entry))) {
    return FailErrno("pread /proc/self/pagemap", errno);
  }
  if ((entry & kPmePresent) == 0) return Fail("a page just written is not reported present");
  return Ok((entry & kPmePfnMask) != 0 ? "present bits and PFNs" : "present bits, PFNs hidden");
}

Result ProbeMemDirtyTrack() {
  // clear_refs=4 write-protects every page of the process: do it in a child.
  return InChild([]() -> Result {
    Mapping m(PageSize());
    if (m.addr() == nullptr) return FailErrno("mmap", errno);
    m.addr()[0] = 1;
    Fd clear(open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC));
    if (!clear.valid()) return FailErrno("/proc/self/clear_refs", errno);
    if (write(clear.get(), "4", 1) != 1)
      return FailErrno("writing 4 to /proc/self/clear_refs", errno);
    m.addr()[0] = 2;
    Fd pm(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    if (!pm.valid()) return FailErrno("/proc/self/pagemap", errno);
    uint64_t entry = 0;
    off_t off = static_cast<off_t>(m.at(0) / PageSize() * sizeof(entry));
    if (pread(pm.get(), &entry, sizeof(entry), off) != static_cast<ssize_t>(sizeof(entry))) {
      return FailErrno("pread /proc/self/pagemap", errno);
    }
    if ((entry & kPmeSoftDirty) == 0) return Fail("kernel built without CONFIG_MEM_SOFT_DIRTY");
    return Ok("soft-dirty bit set on write after clear_refs");
  });
}

Result ProbePagemapScan() {
  Fd pm(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pm.valid()) return FailErrno("/proc/self/pagemap", errno);
  const size_t ps = PageSize();
  Mapping m(4 * ps);
  if (m.addr() == nullptr) return FailErrno("mmap", errno);
  m.addr()[0] = 1;
  m.addr()[2 * ps] = 1;
  PageRegion regions[4] = {};
  long n = Scan(pm.get(), m.at(0), m.at(4 * ps), 0, kPageIsPresent, regions, 4);
  if (n < 0) return FailErrno("ioctl(PAGEMAP_SCAN)", static_cast<int>(-n));
  if (!RegionsArePages(regions, n, m, {0, 2})) {
    return Fail(absl::StrFormat("PAGEMAP_SCAN reported %d regions, expected pages 0 and 2", n));
  }
  return Ok("present pages reported exactly");
}

Result ProbeUffd() {
  std::string err;
  uint64_t offered = 0;
  Fd fd(UffdWithFeatures(0, &offered, &err));
  if (!fd.valid()) return Fail(err);
  return Ok(absl::StrFormat("features %#x", offered));
}

Result ProbeUffdNoncoop() {
  constexpr uint64_t kNoncoop = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
                                UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP;
  std::string err;
  uint64_t offered = 0;
  Fd fd(UffdWithFeatures(kNoncoop, &offered, &err));
  if (!fd.valid()) return Fail(err);
  return Ok("fork, remap, remove and unmap events");
}

Result ProbeUffdWpAsync() {
  const size_t ps = PageSize();
  std::string err;
  uint64_t offered = 0;
  Fd uffd(UffdWithFeatures(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED, &offered, &err));
  if (!uffd.valid()) return Fail(err);
  Fd pm(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pm.valid()) return FailErrno("/proc/self/pagemap", errno);
  Mapping m(4 * ps);
  if (m.addr() == nullptr) return FailErrno("mmap", errno);
  m.addr()[0] = 1;  // one populated page, three unpopulated ones
  uffdio_register reg{};
  reg.range.start = m.at(0);
  reg.range.len = 4 * ps;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd.get(), UFFDIO_REGISTER, &reg) != 0) return FailErrno("UFFDIO_REGISTER(WP)", errno);

  // Write-protect everything (what a tracking round starts with), then write
  // to pages 1 and 3 and expect exactly those to be reported as written.
  PageRegion regions[4] = {};
  long n = Scan(pm.get(), m.at(0), m.at(4 * ps), kPmScanWpMatching | kPmScanCheckWpasync,
                kPageIsWritten, regions, 4);
  if (n < 0) return FailErrno("PAGEMAP_SCAN(PM_SCAN_WP_MATCHING)", static_cast<int>(-n));
  n = Scan(pm.get(), m.at(0), m.at(4 * ps), 0, kPageIsWritten, regions, 4);
  if (n < 0) return FailErrno("PAGEMAP_SCAN(PAGE_IS_WRITTEN)", static_cast<int>(-n));
  if (n != 0) return Fail("pages still reported written right after write-protecting them");
  m.addr()[ps] = 1;
  m.addr()[3 * ps] = 1;
  n = Scan(pm.get(), m.at(0), m.at(4 * ps), kPmScanWpMatching | kPmScanCheckWpasync, kPageIsWritten,
           regions, 4);
  if (n < 0) return FailErrno("PAGEMAP_SCAN(PM_SCAN_WP_MATCHING)", static_cast<int>(-n));
  if (!RegionsArePages(regions, n, m, {1, 3})) {
    return Fail(absl::StrFormat("%d written regions reported, expected pages 1 and 3", n));
  }
  return Ok("pages written since the last scan reported exactly");
}

Result ProbeAioRemap() {
  // Moves an AIO ring: do it in a child so that nothing is left behind.
  return InChild([]() -> Result {
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 16, &ctx) != 0) return FailErrno("io_setup", errno);
    std::optional<std::vector<MapsEntry>> maps = ReadSelfMaps();
    if (!maps) return FailErrno("/proc/self/maps", errno);
    size_t len = 0;
    for (const MapsEntry& e : *maps) {
      if (e.start == ctx) {
        if (e.name.find("[aio]") == std::string::npos) break;
        len = e.end - e.start;
      }
    }
    if (len == 0) return Fail("no [aio] mapping at the context address");
    void* dst = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dst == MAP_FAILED) return FailErrno("mmap", errno);
    void* moved =
        mremap(reinterpret_cast<void*>(ctx), len, len, MREMAP_FIXED | MREMAP_MAYMOVE, dst);
    if (moved == MAP_FAILED) return FailErrno("mremap of the AIO ring", errno);
    long r =
        syscall(SYS_io_getevents, reinterpret_cast<aio_context_t>(moved), 0, 1, nullptr, nullptr);
    if (r < 0) return FailErrno("io_getevents on the moved ring", errno);
    return Ok(absl::StrCat("ring of ", Bytes(len), " moved and still usable"));
  });
}

Result ProbeVmspliceUnaligned() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return FailErrno("pipe2", errno);
  Fd r(p[0]), w(p[1]);
  char byte = 'x';
  iovec iov{&byte, 1};
  if (vmsplice(w.get(), &iov, 1, SPLICE_F_GIFT | SPLICE_F_NONBLOCK) != 1) {
    return FailErrno("vmsplice of one unaligned byte", errno);
  }
  char got = 0;
  if (read(r.get(), &got, 1) != 1 || got != 'x')
    return Fail("the byte did not come out of the pipe");
  return Ok();
}

}  // namespace crpp::kerndat::internal
