#include "tests/infect/infect_testing.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/proc/proc.h"
#include "tests/e2e/harness.h"

namespace crpp::infect::testing {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPresent = 1ull << 63;
constexpr uint64_t kSwapped = 1ull << 62;

std::string Errno(const std::string& what) { return absl::StrCat(what, ": ", strerror(errno)); }

}  // namespace

absl::StatusOr<std::map<int, std::string>> Fds(pid_t pid) {
  auto list = proc::ListFds(pid);
  if (!list.ok()) return list.status();
  std::map<int, std::string> fds;
  for (int fd : *list) {
    auto target = proc::ReadLink(absl::StrCat("/proc/", pid, "/fd/", fd));
    fds[fd] = target.ok() ? *target : "?";
  }
  return fds;
}

absl::StatusOr<std::string> FullView(pid_t pid) {
  auto view = e2e::OutsideView(pid);
  if (!view.ok()) return view.status();
  auto fds = Fds(pid);
  if (!fds.ok()) return fds.status();
  std::string out = *view;
  for (const auto& [fd, target] : *fds) absl::StrAppend(&out, "fd ", fd, " -> ", target, "\n");
  return out;
}

absl::Status ExpectFullView(pid_t pid, const std::string& before) {
  auto now = FullView(pid);
  if (!now.ok()) return now.status();
  if (*now == before) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("pid ", pid, " changed:\n---- before\n", before, "---- now\n", *now));
}

absl::StatusOr<std::vector<PageRange>> AnonymousPages(pid_t pid) {
  auto maps = proc::ReadMaps(pid);
  if (!maps.ok()) return maps.status();
  const std::string path = absl::StrCat("/proc/", pid, "/pagemap");
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::InternalError(Errno(path));
  std::vector<PageRange> out;
  for (const proc::Vma& v : *maps) {
    const bool anonymous =
        !v.is_file() && (v.path.empty() || v.path == "[heap]" || v.path == "[stack]");
    if (!anonymous || !v.read || v.shared) continue;
    std::vector<uint64_t> entries(v.size() / kPage);
    const ssize_t want = static_cast<ssize_t>(entries.size() * 8);
    if (pread(fd, entries.data(), static_cast<size_t>(want),
              static_cast<off_t>(v.start / kPage * 8)) != want) {
      close(fd);
      return absl::InternalError(Errno(path));
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (!(entries[i] & (kPresent | kSwapped))) continue;
      const uint64_t addr = v.start + i * kPage;
      if (!out.empty() && out.back().start + out.back().pages * kPage == addr) {
        ++out.back().pages;
      } else {
        out.push_back({addr, 1});
      }
    }
  }
  close(fd);
  return out;
}

uint64_t TotalBytes(absl::Span<const PageRange> ranges) {
  uint64_t n = 0;
  for (const PageRange& r : ranges) n += r.pages * kPage;
  return n;
}

absl::Status ReadvPages(pid_t pid, absl::Span<const PageRange> ranges, int out_fd) {
  constexpr size_t kBatch = 4 << 20;
  std::vector<char> buf(kBatch);
  for (const PageRange& r : ranges) {
    for (uint64_t off = 0; off < r.pages * kPage; off += kBatch) {
      const size_t len = static_cast<size_t>(std::min<uint64_t>(kBatch, r.pages * kPage - off));
      iovec local{buf.data(), len};
      iovec remote{reinterpret_cast<void*>(r.start + off), len};
      if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(len)) {
        return absl::InternalError(Errno("process_vm_readv"));
      }
      if (write(out_fd, buf.data(), len) != static_cast<ssize_t>(len)) {
        return absl::InternalError(Errno("write"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace crpp::infect::testing
