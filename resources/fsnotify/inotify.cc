#include "resources/fsnotify/inotify.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
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

namespace crpp::resources {
namespace {

constexpr int kHandleWords = 16;  // fh_entry carries at least this many words

struct Watch {
  uint32_t wd = 0, mask = 0, ignored_mask = 0, sdev = 0, handle_bytes = 0;
  int handle_type = 0;
  uint64_t ino = 0;
  std::string handle;  // raw bytes
};

// "inotify wd:2 ino:3c51a sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8
// fhandle-type:1 f_handle:1ac5030000000000" lines of /proc/PID/fdinfo/FD.
std::vector<Watch> ParseWatches(const std::string& fdinfo) {
  std::vector<Watch> out;
  for (std::string_view line : Split(fdinfo, '\n')) {
    if (!line.starts_with("inotify ")) continue;
    Watch w;
    for (std::string_view field : Split(line.substr(8), ' ')) {
      size_t colon = field.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view key = field.substr(0, colon), val = field.substr(colon + 1);
      if (key == "wd") ParseInt(val, w.wd, 16);
      if (key == "ino") ParseInt(val, w.ino, 16);
      if (key == "sdev") ParseInt(val, w.sdev, 16);
      if (key == "mask") ParseInt(val, w.mask, 16);
      if (key == "ignored_mask") ParseInt(val, w.ignored_mask, 16);
      if (key == "fhandle-bytes") ParseInt(val, w.handle_bytes, 16);
      if (key == "fhandle-type") ParseInt(val, w.handle_type, 16);
      if (key == "f_handle") {
        for (size_t i = 0; i + 1 < val.size(); i += 2) {
          uint32_t byte = 0;
          ParseInt(val.substr(i, 2), byte, 16);
          w.handle.push_back(static_cast<char>(byte));
        }
      }
    }
    out.push_back(std::move(w));
  }
  return out;
}

// The path of the inode a watch names, through its file handle: opened on a
// mount of its device (the kernel's s_dev: major << 20 | minor) that task
// `pid` sees.
absl::StatusOr<std::string> ResolveWatch(pid_t pid, const Watch& w) {
  const unsigned major = w.sdev >> 20, minor = w.sdev & 0xfffff;
  auto mountinfo = proc::ReadFile(absl::StrFormat("/proc/%d/mountinfo", pid));
  if (!mountinfo.ok()) return mountinfo.status();
  const std::string dev = absl::StrFormat("%u:%u", major, minor);
  for (std::string_view line : Split(*mountinfo, '\n')) {
    std::vector<std::string_view> f = Split(line, ' ');
    if (f.size() < 5 || f[2] != dev) continue;
    std::string mount_point = absl::StrFormat("/proc/%d/root%s", pid, std::string(f[4]));
    int mfd = open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mfd < 0) continue;
    std::vector<char> buf(sizeof(file_handle) + w.handle.size());
    auto* fh = reinterpret_cast<file_handle*>(buf.data());
    fh->handle_bytes = static_cast<unsigned>(w.handle.size());
    fh->handle_type = w.handle_type;
    memcpy(fh->f_handle, w.handle.data(), w.handle.size());
    int fd = open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
    close(mfd);
    if (fd < 0) continue;
    auto path = proc::ReadLink(absl::StrFormat("/proc/self/fd/%d", fd));
    close(fd);
    if (!path.ok()) return path.status();
    if (path->empty() || (*path)[0] != '/' || path->ends_with(" (deleted)")) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d: inotify watch %d is on an inode without a path (%s): not supported", pid, w.wd,
          *path));
    }
    return *path;
  }
  return absl::NotFoundError(absl::StrFormat(
      "pid %d: inotify watch %d: inode %#x of device %s found on no mount", pid, w.wd, w.ino, dev));
}

}  // namespace

absl::Status Inotify::Dump(DumpContext& ctx) {
  return descriptions::ForEachDescription(
      ctx, "anon_inode:inotify", criu::INOTIFY,
      [](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        // The watch lines, whole: their fields are not "key: value".
        auto text = proc::ReadFile(absl::StrFormat("/proc/%d/fdinfo/%d", f.pid, f.fd));
        if (!text.ok()) return text.status();
        auto* ify = e.mutable_ify();
        ify->set_id(0);
        ify->set_flags(f.flags);
        SetNoOwner(*ify->mutable_fown());
        for (const Watch& w : ParseWatches(*text)) {
          auto path = ResolveWatch(f.pid, w);
          if (!path.ok()) return path.status();
          auto* we = ify->add_wd();
          we->set_id(0);
          we->set_i_ino(w.ino);
          we->set_mask(w.mask);
          we->set_ignored_mask(w.ignored_mask);
          we->set_s_dev(w.sdev);
          we->set_wd(w.wd);
          auto* fh = we->mutable_f_handle();
          fh->set_bytes(w.handle_bytes);
          fh->set_type(static_cast<uint32_t>(w.handle_type));
          for (int i = 0; i < kHandleWords; ++i) {
            uint64_t word = 0;
            if (static_cast<size_t>(i) * 8 < w.handle.size()) {
              memcpy(&word, w.handle.data() + i * 8,
                     std::min<size_t>(8, w.handle.size() - static_cast<size_t>(i) * 8));
            }
            fh->add_handle(word);
          }
          fh->set_path(*path);
          log::Info("inotify: pid %d fd %d: watch %d on %s (mask %#x)", f.pid, f.fd, w.wd, *path,
                    w.mask);
        }
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
