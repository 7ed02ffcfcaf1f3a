#include "resources/fsnotify/inotify.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/strings.h"
#include "fdinfo.pb.h"
#include "fsnotify.pb.h"
#include "resources/common/descriptions.h"
#include "resources/fsnotify/marks.h"

namespace crpp::resources {
namespace {

struct Watch {
  uint32_t wd = 0, mask = 0, ignored_mask = 0, sdev = 0;
  uint64_t ino = 0;
  fsnotify::FileHandle handle;
};

// "inotify wd:2 ino:3c51a sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8
// fhandle-type:1 f_handle:1ac5030000000000" lines of /proc/PID/fdinfo/FD.
absl::StatusOr<std::vector<Watch>> ParseWatches(const std::string& fdinfo,
                                                const std::string& where) {
  std::vector<Watch> out;
  for (std::string_view line : Split(fdinfo, '\n')) {
    if (!line.starts_with("inotify ")) continue;
    const fsnotify::Fields fields = fsnotify::SplitFields(line.substr(8));
    Watch w;
    if (!fsnotify::HexField(fields, "wd", w.wd) || !fsnotify::HexField(fields, "ino", w.ino) ||
        !fsnotify::HexField(fields, "sdev", w.sdev) ||
        !fsnotify::HexField(fields, "mask", w.mask) ||
        !fsnotify::HexField(fields, "ignored_mask", w.ignored_mask)) {
      return absl::DataLossError(
          absl::StrFormat("%s: cannot parse the inotify watch \"%s\"", where, line));
    }
    auto handle =
        fsnotify::HandleFrom(fields, absl::StrFormat("%s: inotify watch %d", where, w.wd));
    if (!handle.ok()) return handle.status();
    w.handle = std::move(*handle);
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace

absl::Status Inotify::Dump(DumpContext& ctx) {
  return descriptions::ForEachDescription(
      ctx, "anon_inode:inotify", criu::INOTIFY,
      [](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        const std::string where = descriptions::Where(f.pid, f.fd);
        // The watch lines, whole: their fields are not "key: value".
        auto text = proc::ReadFile(absl::StrFormat("/proc/%d/fdinfo/%d", f.pid, f.fd));
        if (!text.ok()) return text.status();
        auto watches = ParseWatches(*text, where);
        if (!watches.ok()) return watches.status();
        auto* ify = e.mutable_ify();
        ify->set_id(0);
        ify->set_flags(f.flags);
        SetNoOwner(*ify->mutable_fown());
        for (const Watch& w : *watches) {
          auto path = fsnotify::InodePath(f.pid, w.sdev, w.ino, w.handle,
                                          absl::StrFormat("%s: inotify watch %d", where, w.wd));
          if (!path.ok()) return path.status();
          auto* we = ify->add_wd();
          we->set_id(0);
          we->set_i_ino(w.ino);
          we->set_mask(w.mask);
          we->set_ignored_mask(w.ignored_mask);
          we->set_s_dev(w.sdev);
          we->set_wd(w.wd);
          fsnotify::FillHandle(w.handle, *path, *we->mutable_f_handle());
          log::Info("inotify: %s: watch %d on %s (mask %#x)", where, w.wd, *path, w.mask);
        }
        fsnotify::WarnQueuedEvents(f.pid, f.fd, "inotify");
        return absl::OkStatus();
      });
}

namespace {

// Adds the watch on `path` with watch descriptor `want`: the kernel gives the
// next number of its cycle, so numbers below `want` are taken and dropped.
absl::Status AddWatch(int fd, const std::string& path, uint32_t mask, int want) {
  for (int tries = 0; tries < (1 << 20); ++tries) {
    int wd = inotify_add_watch(fd, path.c_str(), mask);
    if (wd < 0) return descriptions::Errno(absl::StrFormat("inotify watch %d on %s", want, path));
    if (wd == want) return absl::OkStatus();
    if (wd > want) break;
    inotify_rm_watch(fd, wd);
  }
  return absl::InternalError(
      absl::StrFormat("inotify watch on %s: cannot get watch descriptor %d back", path, want));
}

}  // namespace

absl::Status Inotify::Restore(RestoreContext& ctx) {
  auto files = descriptions::ReadEntries(ctx.images_dir, criu::INOTIFY);
  if (!files.ok()) return files.status();
  for (const auto& f : *files) {
    if (!f.has_ify()) {
      return absl::DataLossError(absl::StrFormat("files.img: inotify entry %d is empty", f.id()));
    }
    const auto& ify = f.ify();
    int fd = inotify_init1(IN_CLOEXEC | ((ify.flags() & O_NONBLOCK) ? IN_NONBLOCK : 0));
    if (fd < 0) return descriptions::Errno(absl::StrFormat("inotify entry %d", f.id()));
    std::vector<const criu::inotify_wd_entry*> watches;
    for (const auto& w : ify.wd()) watches.push_back(&w);
    std::sort(watches.begin(), watches.end(),
              [](const auto* a, const auto* b) { return a->wd() < b->wd(); });
    absl::Status status;
    for (const auto* w : watches) {
      if (!w->f_handle().has_path()) {
        status = absl::UnimplementedError(absl::StrFormat(
            "inotify entry %d: watch %d has no path (only a file handle): not supported", f.id(),
            w->wd()));
        break;
      }
      // IN_MASK_ADD and friends are not part of a mark's mask; the mask is
      // the mark's own.
      status = AddWatch(fd, w->f_handle().path(), w->mask(), static_cast<int>(w->wd()));
      if (!status.ok()) break;
    }
    if (!status.ok()) {
      close(fd);
      return status;
    }
    if (auto s = ctx.Inherit(f.id(), fd); !s.ok()) return s;
    log::Info("inotify: entry %d: %d watches", f.id(), watches.size());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
