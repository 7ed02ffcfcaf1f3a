#include "resources/fsnotify/fanotify.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/strings.h"
#include "fdinfo.pb.h"
#include "fsnotify.pb.h"
#include "resources/common/descriptions.h"
#include "resources/fsnotify/marks.h"

namespace crpp::resources {
namespace {

constexpr std::string_view kPrefix = "fanotify ";

// The mount of `pid` that ACCEPT picks, or null.
template <class Accept>
const fsnotify::Mount* FindMount(const std::vector<fsnotify::Mount>& mounts, Accept accept) {
  auto it = std::find_if(mounts.begin(), mounts.end(), accept);
  return it == mounts.end() ? nullptr : &*it;
}

// One mark line of fdinfo (after "fanotify "), as an image entry:
//   ino:a72307 sdev:fe00000 mflags:0 mask:2 ignored_mask:0 fhandle-bytes:8 ...
//   mnt_id:1b mflags:0 mask:20 ignored_mask:0
//   sdev:fe00000 mflags:0 mask:10 ignored_mask:0
absl::StatusOr<criu::fanotify_mark_entry> ParseMark(pid_t pid, std::string_view line,
                                                    const std::vector<fsnotify::Mount>& mounts,
                                                    const std::string& where) {
  const fsnotify::Fields fields = fsnotify::SplitFields(line);
  criu::fanotify_mark_entry m;
  m.set_id(0);
  uint32_t mflags = 0, mask = 0, ignored = 0;
  if (fields.empty() || !fsnotify::HexField(fields, "mflags", mflags) ||
      !fsnotify::HexField(fields, "mask", mask) ||
      !fsnotify::HexField(fields, "ignored_mask", ignored)) {
    return absl::DataLossError(
        absl::StrFormat("%s: cannot parse the fanotify mark \"%s\"", where, line));
  }
  m.set_mask(mask);
  m.set_ignored_mask(ignored);
  const std::string_view kind = fields.front().first;
  uint32_t sdev = 0;
  if (kind == "ino") {
    uint64_t ino = 0;
    if (!fsnotify::HexField(fields, "ino", ino) || !fsnotify::HexField(fields, "sdev", sdev)) {
      return absl::DataLossError(
          absl::StrFormat("%s: bad fanotify inode mark \"%s\"", where, line));
    }
    const std::string what = where + ": a fanotify mark";
    auto handle = fsnotify::HandleFrom(fields, what);
    if (!handle.ok()) return handle.status();
    auto path = fsnotify::InodePath(pid, sdev, ino, *handle, what);
    if (!path.ok()) return path.status();
    m.set_type(criu::INODE);
    m.set_mflags(mflags);
    m.set_s_dev(sdev);
    m.mutable_ie()->set_i_ino(ino);
    fsnotify::FillHandle(*handle, *path, *m.mutable_ie()->mutable_f_handle());
    return m;
  }
  const fsnotify::Mount* mount = nullptr;
  if (kind == "mnt_id") {
    uint32_t id = 0;
    if (!fsnotify::HexField(fields, "mnt_id", id)) {
      return absl::DataLossError(
          absl::StrFormat("%s: bad fanotify mount mark \"%s\"", where, line));
    }
    mount = FindMount(mounts, [id](const fsnotify::Mount& mt) { return mt.id == id; });
    if (mount == nullptr) {
      return absl::NotFoundError(absl::StrFormat(
          "%s: fanotify mark on mount %d, which pid %d does not see", where, id, pid));
    }
  } else if (kind == "sdev") {
    if (!fsnotify::HexField(fields, "sdev", sdev)) {
      return absl::DataLossError(
          absl::StrFormat("%s: bad fanotify filesystem mark \"%s\"", where, line));
    }
    // Any mount of the filesystem names it.
    mount = FindMount(mounts, [sdev](const fsnotify::Mount& mt) { return mt.sdev == sdev; });
    if (mount == nullptr) {
      return absl::NotFoundError(
          absl::StrFormat("%s: fanotify mark on the filesystem of device %u:%u, which pid %d "
                          "sees mounted nowhere",
                          where, sdev >> 20, sdev & 0xfffff, pid));
    }
    // CRIU's format knows inode and mount marks only (see fanotify.h).
    mflags |= FAN_MARK_FILESYSTEM;
  } else {
    return absl::UnimplementedError(absl::StrFormat(
        "%s is a fanotify group with a mark of a kind not supported (\"%s\")", where, line));
  }
  m.set_type(criu::MOUNT);
  m.set_mflags(mflags);
  m.set_s_dev(mount->sdev);
  m.mutable_me()->set_mnt_id(mount->id);
  m.mutable_me()->set_path(mount->point);
  return m;
}

// Fills FFY (but its id, flags and owner) from the fdinfo of `f`.
absl::Status Describe(const descriptions::Found& f, criu::fanotify_file_entry& ffy) {
  const std::string where = descriptions::Where(f.pid, f.fd);
  // The mark lines, whole: their fields are not "key: value".
  auto text = proc::ReadFile(absl::StrFormat("/proc/%d/fdinfo/%d", f.pid, f.fd));
  if (!text.ok()) return text.status();
  auto mounts = fsnotify::Mounts(f.pid);
  if (!mounts.ok()) return mounts.status();
  bool have_flags = false;
  for (std::string_view line : Split(*text, '\n')) {
    if (!line.starts_with(kPrefix)) continue;
    line.remove_prefix(kPrefix.size());
    if (line.starts_with("flags:")) {
      const fsnotify::Fields fields = fsnotify::SplitFields(line);
      uint32_t flags = 0, event_flags = 0;
      if (!fsnotify::HexField(fields, "flags", flags) ||
          !fsnotify::HexField(fields, "event-flags", event_flags)) {
        return absl::DataLossError(
            absl::StrFormat("%s: cannot parse the fanotify flags \"%s\"", where, line));
      }
      ffy.set_faflags(flags);
      ffy.set_evflags(event_flags);
      have_flags = true;
      continue;
    }
    auto mark = ParseMark(f.pid, line, *mounts, where);
    if (!mark.ok()) return mark.status();
    *ffy.add_mark() = std::move(*mark);
  }
  if (!have_flags) {
    return absl::DataLossError(where + ": a fanotify fd whose fdinfo has no flags line");
  }
  return absl::OkStatus();
}

absl::Status Walk(DumpContext& ctx, bool dumping) {
  return descriptions::ForEachDescription(
      ctx, IsFanotify, criu::FANOTIFY,
      [dumping](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        auto* ffy = e.mutable_ffy();
        ffy->set_id(0);
        ffy->set_flags(f.flags);
        SetNoOwner(*ffy->mutable_fown());
        if (auto s = Describe(f, *ffy); !s.ok()) return s;
        if (!dumping) return absl::OkStatus();
        fsnotify::WarnQueuedEvents(f.pid, f.fd, "fanotify");
        log::Info("fanotify: %s: flags %#x, event flags %#o, %d marks",
                  descriptions::Where(f.pid, f.fd), ffy->faflags(), ffy->evflags(),
                  ffy->mark_size());
        for (const auto& m : ffy->mark()) {
          log::Info("fanotify:   %s mark on %s: mask %#x, ignored %#x, flags %#x",
                    m.type() == criu::INODE                   ? "inode"
                    : (m.mflags() & FAN_MARK_FILESYSTEM) != 0 ? "filesystem"
                                                              : "mount",
                    m.has_ie() ? m.ie().f_handle().path() : m.me().path(), m.mask(),
                    m.ignored_mask(), m.mflags());
        }
        return absl::OkStatus();
      });
}

}  // namespace

absl::Status Fanotify::Precheck(DumpContext& ctx) {
  // The same walk on a table of its own: nothing is recorded.
  FileTable scratch;
  DumpContext probe = ctx.Probe(&scratch);
  return Walk(probe, false);
}

absl::Status Fanotify::Dump(DumpContext& ctx) { return Walk(ctx, true); }

// ---- restore ------------------------------------------------------------------

namespace {

absl::Status Mark(int fd, unsigned flags, uint32_t mask, const std::string& path,
                  const std::string& what) {
  if (fanotify_mark(fd, flags, mask, AT_FDCWD, path.c_str()) != 0) {
    return descriptions::Errno(
        absl::StrFormat("%s: fanotify_mark(%#x, mask %#x) on %s", what, flags, mask, path));
  }
  return absl::OkStatus();
}

// Sets the mark M again in the group FD.
absl::Status AddMark(int fd, const criu::fanotify_mark_entry& m, const std::string& what) {
  unsigned type = FAN_MARK_INODE;
  std::string path;
  if (m.type() == criu::INODE && m.has_ie() && m.ie().f_handle().has_path()) {
    path = m.ie().f_handle().path();
  } else if (m.type() == criu::MOUNT && m.has_me() && m.me().has_path()) {
    type = (m.mflags() & FAN_MARK_FILESYSTEM) ? FAN_MARK_FILESYSTEM : FAN_MARK_MOUNT;
    path = m.me().path();
  } else {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: a %s mark without a path (only a file handle or a mount id): not supported", what,
        criu::mark_type_Name(m.type())));
  }
  // An evictable mark stays one; the flags of the ignored mask go with it.
  const unsigned evictable = m.mflags() & FAN_MARK_EVICTABLE;
  if (m.mask() != 0) {
    if (auto s = Mark(fd, FAN_MARK_ADD | type | evictable, m.mask(), path, what); !s.ok()) return s;
  }
  // FAN_MARK_IGNORE in mflags: the ignored mask was set the newer way (its
  // event flags count); FAN_MARK_IGNORED_SURV_MODIFY: a write to the file
  // does not clear it.
  const unsigned how = (m.mflags() & FAN_MARK_IGNORE) ? FAN_MARK_IGNORE : FAN_MARK_IGNORED_MASK;
  const unsigned ignore_flags =
      FAN_MARK_ADD | type | evictable | how | (m.mflags() & FAN_MARK_IGNORED_SURV_MODIFY);
  if (m.ignored_mask() != 0) return Mark(fd, ignore_flags, m.ignored_mask(), path, what);
  if (m.mflags() & (FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY)) {
    // The flags outlived the ignored mask they came with: they are set with
    // a bit that is taken back at once.
    if (auto s = Mark(fd, ignore_flags, FAN_ACCESS, path, what); !s.ok()) return s;
    return Mark(fd, FAN_MARK_REMOVE | type | how, FAN_ACCESS, path, what);
  }
  return absl::OkStatus();
}

// The marks of the group FD as (mflags, mask, ignored_mask), sorted: what
// the kernel shows of them wherever they are.
std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> Shapes(const std::string& fdinfo) {
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> out;
  for (std::string_view line : Split(fdinfo, '\n')) {
    if (!line.starts_with(kPrefix) || line.starts_with("fanotify flags:")) continue;
    const fsnotify::Fields fields = fsnotify::SplitFields(line.substr(kPrefix.size()));
    uint32_t mflags = 0, mask = 0, ignored = 0;
    fsnotify::HexField(fields, "mflags", mflags);
    fsnotify::HexField(fields, "mask", mask);
    fsnotify::HexField(fields, "ignored_mask", ignored);
    out.emplace_back(mflags, mask, ignored);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The kernel may take a mark other than asked without an error (an ignored
// mask on a file open for writing is dropped unless it survives writes):
// the group must show the marks of the image.
absl::Status CheckMarks(int fd, const criu::fanotify_file_entry& ffy, const std::string& what) {
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> want;
  for (const auto& m : ffy.mark()) {
    want.emplace_back(m.mflags() & ~static_cast<uint32_t>(FAN_MARK_FILESYSTEM), m.mask(),
                      m.ignored_mask());
  }
  std::sort(want.begin(), want.end());
  auto text = proc::ReadFile(absl::StrFormat("/proc/self/fdinfo/%d", fd));
  if (!text.ok()) return text.status();
  if (Shapes(*text) != want) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: the kernel did not take the marks as they were (a file with an ignored mask open "
        "for writing, two marks now on one object?); the group shows:\n%s",
        what, *text));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> MakeGroup(const criu::file_entry& f) {
  const std::string what = absl::StrFormat("fanotify entry %d", f.id());
  if (!f.has_ffy()) return absl::DataLossError("files.img: " + what + " is empty");
  const criu::fanotify_file_entry& ffy = f.ffy();
  // The init flags as they were (FAN_CLOEXEC and FAN_NONBLOCK among them, as
  // fdinfo shows them); the fd flags are the Fds plugin's.
  int fd = fanotify_init(ffy.faflags(), ffy.evflags());
  if (fd < 0) {
    return descriptions::Errno(absl::StrFormat("%s: fanotify_init(flags %#x, event flags %#o)",
                                               what, ffy.faflags(), ffy.evflags()));
  }
  absl::Status s;
  if (fcntl(fd, F_SETFL, ffy.flags() & O_NONBLOCK) != 0) s = descriptions::Errno(what + ": flags");
  // fdinfo lists the newest mark first: the oldest goes in first.
  for (int i = ffy.mark_size() - 1; i >= 0 && s.ok(); --i) s = AddMark(fd, ffy.mark(i), what);
  if (s.ok()) s = CheckMarks(fd, ffy, what);
  if (!s.ok()) {
    close(fd);
    return s;
  }
  return fd;
}

}  // namespace

absl::Status Fanotify::Restore(RestoreContext& ctx) {
  auto files = descriptions::ReadEntries(ctx.images_dir, criu::FANOTIFY);
  if (!files.ok()) return files.status();
  for (const auto& f : *files) {
    auto fd = MakeGroup(f);
    if (!fd.ok()) return fd.status();
    if (auto s = ctx.Inherit(f.id(), *fd); !s.ok()) return s;
    log::Info("fanotify: entry %d: %d marks", f.id(), f.ffy().mark_size());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
