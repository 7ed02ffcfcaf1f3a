#include "resources/files/pidfd.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/proc/proc.h"
#include "core/strings.h"
#include "fdinfo.pb.h"
#include "pidfd.pb.h"

namespace crpp::resources {

absl::StatusOr<uint32_t> DumpPidfd(DumpContext& ctx, pid_t pid, int fd, uint32_t flags,
                                   uint64_t ino) {
  auto text = proc::ReadFile(absl::StrFormat("/proc/%d/fdinfo/%d", pid, fd));
  if (!text.ok()) return text.status();
  pid_t target = 0;
  for (std::string_view line : Split(*text, '\n')) {
    if (line.starts_with("Pid:")) ParseInt(Trim(line.substr(4)), target);
  }
  bool in_tree = false;
  for (const TreeTask& t : ctx.tree) in_tree |= t.pid == target;
  if (target <= 0 || !in_tree) {
    return absl::UnimplementedError(absl::StrFormat(
        "pid %d fd %d is a pidfd of %s: only pidfds of processes of the dumped tree are supported",
        pid, fd, target <= 0 ? "a process that is gone" : absl::StrFormat("pid %d", target)));
  }
  criu::file_entry e;
  e.set_type(criu::PIDFD);
  e.set_id(0);
  auto* p = e.mutable_pidfd();
  p->set_id(0);
  p->set_ino(static_cast<uint32_t>(ino));
  p->set_flags(flags);
  p->set_nspid(target);
  SetNoOwner(*p->mutable_fown());
  return ctx.files->Add(std::move(e));
}

absl::StatusOr<int> OpenPidfd(const criu::pidfd_entry& e, int target_fd) {
  const unsigned flags = (e.flags() & O_NONBLOCK) ? O_NONBLOCK : 0;  // PIDFD_NONBLOCK
  for (int waited = 0;; waited += 2) {
    long fd = syscall(SYS_pidfd_open, e.nspid(), flags);
    if (fd >= 0) {
      int high = fcntl(static_cast<int>(fd), F_DUPFD_CLOEXEC, 0);
      close(static_cast<int>(fd));
      if (high < 0) break;
      return high;
    }
    if (errno != ESRCH || waited >= 2000) break;
    usleep(2000);
  }
  return absl::NotFoundError(
      absl::StrFormat("fd %d: pidfd of pid %d: %s", target_fd, e.nspid(), strerror(errno)));
}

}  // namespace crpp::resources
