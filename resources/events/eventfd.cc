#include "resources/events/eventfd.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "resources/common/descriptions.h"

namespace crpp::resources {

absl::Status EventFd::Dump(DumpContext& ctx) {
  return descriptions::ForEachDescription(
      ctx, "anon_inode:[eventfd]", criu::EVENTFD,
      [](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        const std::string where = descriptions::Where(f.pid, f.fd);
        auto count = f.info.Number("eventfd-count", 16, where);
        if (!count.ok()) return count.status();
        // Kernels before 6.2 do not show the mode; then it cannot be told.
        auto semaphore = f.info.Number("eventfd-semaphore", 10, where);
        if (!semaphore.ok()) return semaphore.status();
        auto* efd = e.mutable_efd();
        efd->set_id(0);
        efd->set_flags(f.flags | (*semaphore ? EFD_SEMAPHORE : 0));
        SetNoOwner(*efd->mutable_fown());
        efd->set_counter(*count);
        log::Info("eventfd: %s: count %d%s, flags %#o", where, *count,
                  *semaphore ? " (semaphore)" : "", f.flags);
        return absl::OkStatus();
      });
}

absl::Status EventFd::Restore(RestoreContext& ctx) {
  auto entries = descriptions::ReadEntries(ctx.images_dir, criu::EVENTFD);
  if (!entries.ok()) return entries.status();
  for (const criu::file_entry& f : *entries) {
    if (!f.has_efd()) {
      return absl::DataLossError(absl::StrFormat("files.img: eventfd entry %d has no efd", f.id()));
    }
    const criu::eventfd_file_entry& efd = f.efd();
    const std::string what = absl::StrFormat("eventfd (file id %d)", f.id());
    // eventfd() takes an unsigned int: a bigger count is written after.
    int flags = EFD_CLOEXEC | (efd.flags() & O_NONBLOCK ? EFD_NONBLOCK : 0) |
                (efd.flags() & EFD_SEMAPHORE ? EFD_SEMAPHORE : 0);
    uint64_t count = efd.counter();
    int fd = eventfd(count <= 0xffffffffu ? static_cast<unsigned>(count) : 0, flags);
    if (fd < 0) return descriptions::Errno(what + ": eventfd");
    if (count > 0xffffffffu && write(fd, &count, sizeof(count)) != sizeof(count)) {
      absl::Status s =
          descriptions::Errno(absl::StrFormat("%s: setting its count to %d", what, count));
      close(fd);
      return s;
    }
    if (auto s = ctx.Inherit(f.id(), fd); !s.ok()) return s;
    log::Debug("eventfd: file id %d: count %d, flags %#o", f.id(), count, efd.flags());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
