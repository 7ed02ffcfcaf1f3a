#include "resources/events/signalfd.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

// <signal.h>'s deprecated sigmask() macro would rewrite the proto accessor.
#undef sigmask

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "resources/common/descriptions.h"

namespace crpp::resources {

absl::Status SignalFd::Dump(DumpContext& ctx) {
  return descriptions::ForEachDescription(
      ctx, "anon_inode:[signalfd]", criu::SIGNALFD,
      [](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        const std::string where = descriptions::Where(f.pid, f.fd);
        auto mask = f.info.Number("sigmask", 16, where);
        if (!mask.ok()) return mask.status();
        auto* s = e.mutable_sgfd();
        s->set_id(0);
        s->set_flags(f.flags);
        SetNoOwner(*s->mutable_fown());
        s->set_sigmask(*mask);
        log::Info("signalfd: %s: mask %#x, flags %#o", where, *mask, f.flags);
        return absl::OkStatus();
      });
}

absl::Status SignalFd::Restore(RestoreContext& ctx) {
  auto entries = descriptions::ReadEntries(ctx.images_dir, criu::SIGNALFD);
  if (!entries.ok()) return entries.status();
  for (const criu::file_entry& f : *entries) {
    if (!f.has_sgfd()) {
      return absl::DataLossError(
          absl::StrFormat("files.img: signalfd entry %d has no sgfd", f.id()));
    }
    const criu::signalfd_entry& sg = f.sgfd();
    // The kernel's 64-bit mask as it is (bit N-1 for signal N), signals
    // glibc keeps for itself included: signalfd4 takes 8 bytes.
    uint64_t mask = sg.sigmask();
    int flags = SFD_CLOEXEC | (sg.flags() & O_NONBLOCK ? SFD_NONBLOCK : 0);
    int fd = static_cast<int>(syscall(SYS_signalfd4, -1, &mask, sizeof(mask), flags));
    if (fd < 0) {
      return descriptions::Errno(absl::StrFormat("signalfd (file id %d, mask %#x)", f.id(), mask));
    }
    if (auto s = ctx.Inherit(f.id(), fd); !s.ok()) return s;
    log::Debug("signalfd: file id %d: mask %#x", f.id(), mask);
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
