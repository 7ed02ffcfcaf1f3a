#include "resources/common/descriptions.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/proc/proc.h"
#include "core/strings.h"

namespace crpp::resources::descriptions {

const std::string* FdInfoLines::Find(std::string_view key) const {
  for (const auto& [k, v] : lines) {
    if (k == key) return &v;
  }
  return nullptr;
}

absl::StatusOr<uint64_t> FdInfoLines::Number(std::string_view key, int base,
                                             const std::string& what) const {
  const std::string* v = Find(key);
  uint64_t n = 0;
  if (v == nullptr || !ParseInt(std::string_view(*v), n, base)) {
    return absl::DataLossError(absl::StrFormat("%s: fdinfo has no number \"%s\" (%s)", what, key,
                                               v == nullptr ? "missing" : *v));
  }
  return n;
}

absl::StatusOr<FdInfoLines> ReadFdInfoLines(pid_t pid, int fd) {
  auto text = proc::ReadFile(absl::StrFormat("/proc/%d/fdinfo/%d", pid, fd));
  if (!text.ok()) return text.status();
  FdInfoLines out;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string_view l(line);
    out.lines.emplace_back(std::string(Trim(l.substr(0, colon))),
                           std::string(Trim(l.substr(colon + 1))));
  }
  return out;
}

std::string Where(pid_t pid, int fd) { return absl::StrFormat("pid %d fd %d", pid, fd); }

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

absl::StatusOr<int> CopyFd(pid_t pid, int fd) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return Errno(Where(pid, fd) + ": pidfd_open");
  int copy = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  int e = errno;
  close(pidfd);
  errno = e;
  if (copy < 0) return Errno(Where(pid, fd) + ": pidfd_getfd");
  return copy;
}

absl::Status ForEachDescription(DumpContext& ctx, const LinkMatch& match, criu::fd_types type,
                                const Describe& describe) {
  return ctx.ForEachTreeFd([&](pid_t pid, const DumpContext::OpenFd& open) -> absl::Status {
    if (!match(open.link)) return absl::OkStatus();
    const int fd = open.fd;
    const struct stat& st = open.st;
    uint32_t id = ctx.files->FindDescription(pid, fd, st.st_dev, st.st_ino);
    if (id == 0) {
      auto info = ReadFdInfoLines(pid, fd);
      if (!info.ok()) return info.status();
      auto flags = info->Number("flags", 8, Where(pid, fd));
      if (!flags.ok()) return flags.status();
      Found found{pid,
                  fd,
                  static_cast<uint32_t>(*flags) & ~static_cast<uint32_t>(O_CLOEXEC),
                  std::move(*info),
                  open.link,
                  st};
      criu::file_entry e;
      e.set_type(type);
      e.set_id(0);
      if (auto s = describe(found, e); !s.ok()) return s;
      id = ctx.files->Add(std::move(e));
      ctx.files->AddDescription(id, pid, fd, st.st_dev, st.st_ino);
    }
    ctx.fd_ids[{pid, fd}] = {id, type};
    return absl::OkStatus();
  });
}

absl::Status ForEachDescription(DumpContext& ctx, std::string_view link, criu::fd_types type,
                                const Describe& describe) {
  return ForEachDescription(
      ctx, [link](std::string_view target) { return target == link; }, type, describe);
}

absl::StatusOr<std::vector<criu::file_entry>> ReadEntries(const std::string& images_dir,
                                                          criu::fd_types type) {
  auto files = images::ReadAll<criu::file_entry>(images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  std::vector<criu::file_entry> out;
  for (auto& f : *files) {
    if (f.type() == type) out.push_back(std::move(f));
  }
  return out;
}

}  // namespace crpp::resources::descriptions
