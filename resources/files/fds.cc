#include "resources/files/fds.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"
#include "fs.pb.h"
#include "pstree.pb.h"
#include "resources/files/pidfd.h"
#include "resources/tty/devices.h"

namespace crpp::resources {
namespace {

// Open flags that describe how a file was opened, not how to open it again.
constexpr uint32_t kNotReopenFlags = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC;

struct FdFile {
  int fd;
  std::string path;
  struct stat st;
  proc::FdInfo info;
  std::string protocol;  // of a socket: "UNIX-STREAM", "TCP", ...
};

// What the fds plugin needs to know of `pid`'s fd OPEN; its fdinfo (flags,
// position) only `with_info` (the precheck does without).
absl::StatusOr<FdFile> Inspect(pid_t pid, const DumpContext::OpenFd& open, bool with_info) {
  const int fd = open.fd;
  FdFile f{fd, open.link, open.st, {}, {}};
  std::string link = absl::StrFormat("/proc/%d/fd/%d", pid, fd);
  if (with_info) {
    auto info = DumpContext::InfoOf(pid, open);
    if (!info.ok()) return info.status();
    f.info = *info;
  }
  if (S_ISSOCK(f.st.st_mode)) {
    char proto[64] = {0};
    ssize_t n = getxattr(link.c_str(), "system.sockprotoname", proto, sizeof proto - 1);
    f.protocol = n > 0 ? std::string(proto, strnlen(proto, static_cast<size_t>(n))) : "unknown";
  }
  return f;
}

// The anon_inode kinds a plugin of resources/events dumps (into ctx.fd_ids).
bool IsEventFdKind(std::string_view link) {
  return link == "anon_inode:[eventfd]" || link == "anon_inode:[timerfd]" ||
         link == "anon_inode:[signalfd]" || link == "anon_inode:[eventpoll]";
}

// The kinds the inotify and fanotify plugins dump (into ctx.fd_ids).
bool IsFsnotifyKind(std::string_view link) {
  return link == "anon_inode:inotify" || link == "anon_inode:[fanotify]";
}

// Why an fd cannot be dumped yet, or "" if it can.
std::string Unsupported(const FdFile& f, bool shell_job) {
  mode_t m = f.st.st_mode;
  if (S_ISREG(m) || S_ISDIR(m)) {
    if (S_ISREG(m) && f.path.rfind("/memfd:", 0) == 0) return "";  // the shmem plugin has it
    if (std::string_view(f.path).ends_with(" (deleted)")) {
      if (S_ISDIR(m)) return "the directory " + f.path + ", removed while open: not supported";
      // Deleted regular files are the ghosts plugin's (ghost.h).
      return "an unlinked (deleted) file the ghosts plugin did not take";
    }
    if (f.path.empty() || f.path[0] != '/') return "a file without a path (" + f.path + ")";
    return "";
  }
  if (S_ISCHR(m)) {
    const dev_t rdev = f.st.st_rdev;
    // The ends of the tree's own ptys are the tty plugin's (ctx.fd_ids); a
    // master it did not take is one whose slave is outside the tree.
    if (tty::IsPtyMaster(rdev)) return "a pty master (" + f.path + ") the tty plugin did not take";
    if (tty::IsTerminalDevice(rdev) && !shell_job) {
      return tty::TerminalKind(rdev) + " (" + f.path + ")" +
             (tty::IsPtySlave(rdev) ? " whose master is not in the dumped tree" : "") +
             ": dump with --shell-job to restore it on the caller's terminal";
    }
    return "";
  }
  if (S_ISFIFO(m)) return "";  // the pipes and fifos plugins have them
  if (S_ISSOCK(m)) {
    if (f.protocol.rfind("UNIX", 0) == 0) return "";  // the unix plugin has it
    return "a " + f.protocol + " socket (" + f.path + "): only UNIX sockets are supported yet";
  }
  if (IsFsnotifyKind(f.path)) return "";  // the inotify and fanotify plugins have it
  if (IsEventFdKind(f.path)) return "";   // the events plugins have it
  if (IsPidfd(f.path)) return "";         // pidfd.h
  if (f.path.rfind("anon_inode:", 0) == 0) return "an " + f.path + " fd: not supported yet";
  return "of an unsupported kind (" + f.path + ")";
}

// The id of PID's fd table (fdinfo-ID.img), from its ids image.
absl::StatusOr<uint32_t> FilesId(const std::string& dir, pid_t pid) {
  auto ids = images::ReadAll<criu::task_kobj_ids_entry>(absl::StrFormat("%s/ids-%d.img", dir, pid),
                                                        images::Ids());
  if (!ids.ok()) return ids.status();
  if (ids->size() != 1) {
    return absl::DataLossError(absl::StrFormat("%s/ids-%d.img: expected one entry", dir, pid));
  }
  return ids->front().files_id();
}

bool IsExternal(const DumpContext& ctx, const std::string& key) {
  return std::find(ctx.external.begin(), ctx.external.end(), key) != ctx.external.end();
}

// fs-PID.img: cwd, root, umask.
absl::Status DumpFs(DumpContext& ctx) {
  pid_t pid = ctx.pid;
  auto cwd = proc::ReadLink(absl::StrFormat("/proc/%d/cwd", pid));
  auto root = proc::ReadLink(absl::StrFormat("/proc/%d/root", pid));
  if (!cwd.ok()) return cwd.status();
  if (!root.ok()) return root.status();
  if (std::string_view(*cwd).ends_with(" (deleted)")) {
    return absl::UnimplementedError(
        absl::StrFormat("pid %d: its working directory %s was removed", pid, *cwd));
  }
  criu::fs_entry fs;
  fs.set_cwd_id(ctx.files->AddPath(*cwd, O_RDONLY | O_DIRECTORY));
  fs.set_root_id(ctx.files->AddPath(*root, O_RDONLY | O_DIRECTORY));
  fs.set_umask(ctx.status->umask);
  auto fw = images::TypedImageWriter<criu::fs_entry>::Create(
      absl::StrFormat("%s/fs-%d.img", ctx.images_dir, pid), images::Fs());
  if (!fw.ok()) return fw.status();
  if (auto s = fw->Write(fs); !s.ok()) return s;
  return fw->Close();
}

}  // namespace

absl::StatusOr<std::vector<criu::fdinfo_entry>> ReadTaskFdinfo(const std::string& dir, pid_t pid) {
  auto files_id = FilesId(dir, pid);
  if (!files_id.ok()) return files_id.status();
  return images::ReadAll<criu::fdinfo_entry>(absl::StrFormat("%s/fdinfo-%d.img", dir, *files_id),
                                             images::Fdinfo());
}

absl::Status Fds::Precheck(DumpContext& ctx) {
  // A table shared with the parent is checked through its owner.
  if (ctx.zombie || !ctx.owns_fd_table()) return absl::OkStatus();
  auto fds = ctx.OpenFds(ctx.pid);
  if (!fds.ok()) return fds.status();
  for (const DumpContext::OpenFd& open : **fds) {
    const int fd = open.fd;
    auto f = Inspect(ctx.pid, open, /*with_info=*/false);
    if (!f.ok()) return f.status();
    if (S_ISREG(f->st.st_mode) && std::string_view(f->path).ends_with(" (deleted)")) {
      continue;  // the ghosts plugin checks these
    }
    if (S_ISCHR(f->st.st_mode) &&
        (tty::IsPtyMaster(f->st.st_rdev) || tty::IsPtySlave(f->st.st_rdev) ||
         IsExternal(ctx, tty::ExternalKey(f->st.st_rdev, f->st.st_dev)))) {
      continue;  // the tty plugin checks the ends of ptys and external terminals
    }
    std::string why = Unsupported(*f, ctx.shell_job);
    if (!why.empty()) {
      return absl::UnimplementedError(absl::StrFormat("pid %d fd %d is %s", ctx.pid, fd, why));
    }
  }
  return absl::OkStatus();
}

absl::Status Fds::Dump(DumpContext& ctx) {
  if (ctx.zombie) return absl::OkStatus();
  // fdinfo-N.img is per fd table: N is the task's files_id (tree.cc). A
  // task sharing its parent's table (clone(CLONE_FILES)) has its fs only:
  // the table's owner, earlier in the tree, wrote the table.
  if (!ctx.owns_fd_table()) {
    log::Info("fds: pid %d uses fd table %d (CLONE_FILES), dumped with its owner", ctx.pid,
              ctx.files_id);
    return DumpFs(ctx);
  }
  pid_t pid = ctx.pid;
  auto fds = ctx.OpenFds(pid);
  if (!fds.ok()) return fds.status();
  auto w = images::TypedImageWriter<criu::fdinfo_entry>::Create(
      absl::StrFormat("%s/fdinfo-%d.img", ctx.images_dir, ctx.files_id), images::Fdinfo());
  if (!w.ok()) return w.status();
  for (const DumpContext::OpenFd& open : **fds) {
    const int fd = open.fd;
    auto f = Inspect(pid, open, /*with_info=*/true);
    if (!f.ok()) return f.status();
    // Descriptions a tree-wide plugin (pipes, ghosts) has already put in the
    // table; and fds made by dup() or inherited across fork(), which share
    // one open file description (and its offset): kcmp tells, and they share
    // one file id so restore shares it again.
    DumpContext::FdRef ref;
    auto known = ctx.fd_ids.find({pid, fd});
    if (known == ctx.fd_ids.end()) {
      if (std::string why = Unsupported(*f, ctx.shell_job); !why.empty()) {
        return absl::UnimplementedError(absl::StrFormat("pid %d fd %d is %s", pid, fd, why));
      }
    }
    if (known != ctx.fd_ids.end()) {
      ref = known->second;
    } else if (S_ISSOCK(f->st.st_mode)) {
      return absl::InternalError(
          absl::StrFormat("pid %d fd %d: the socket %s was not dumped", pid, fd, f->path));
    } else if (IsEventFdKind(f->path) || IsFsnotifyKind(f->path)) {
      return absl::InternalError(
          absl::StrFormat("pid %d fd %d (%s): no plugin dumped it", pid, fd, f->path));
    } else if (IsPidfd(f->path)) {
      // Opened again by each holder (a description of its own).
      ref.id = ctx.files->FindDescription(pid, fd, f->st.st_dev, f->st.st_ino);
      ref.type = criu::PIDFD;
      if (ref.id == 0) {
        auto id = DumpPidfd(ctx, pid, fd, f->info.flags & ~O_CLOEXEC, f->st.st_ino);
        if (!id.ok()) return id.status();
        ref.id = *id;
        ctx.files->AddDescription(ref.id, pid, fd, f->st.st_dev, f->st.st_ino);
      }
    } else {
      ref.id = ctx.files->FindDescription(pid, fd, f->st.st_dev, f->st.st_ino);
      ref.type = criu::REG;
    }
    if (ref.id != 0) {
      criu::fdinfo_entry fe;
      fe.set_id(ref.id);
      fe.set_flags((f->info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0);
      fe.set_type(static_cast<criu::fd_types>(ref.type));
      fe.set_fd(static_cast<uint32_t>(fd));
      if (auto s = w->Write(fe); !s.ok()) return s;
      log::Debug("fds: pid %d fd %d is file id %d", pid, fd, ref.id);
      continue;
    }
    criu::file_entry e;
    e.set_type(criu::REG);
    e.set_id(0);
    auto* reg = e.mutable_reg();
    reg->set_id(0);
    reg->set_flags(f->info.flags & ~O_CLOEXEC);
    reg->set_pos(f->info.pos);
    SetNoOwner(*reg->mutable_fown());
    reg->set_name(f->path);
    if (f->info.mnt_id >= 0) reg->set_mnt_id(f->info.mnt_id);
    if (S_ISREG(f->st.st_mode)) reg->set_size(static_cast<uint64_t>(f->st.st_size));
    reg->set_mode(f->st.st_mode);
    uint32_t id = ctx.files->Add(std::move(e));
    ctx.files->AddDescription(id, pid, fd, f->st.st_dev, f->st.st_ino);
    criu::fdinfo_entry fe;
    fe.set_id(id);
    fe.set_flags((f->info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0);
    fe.set_type(criu::REG);
    fe.set_fd(static_cast<uint32_t>(fd));
    if (auto s = w->Write(fe); !s.ok()) return s;
    log::Debug("fds: pid %d fd %d -> %s (pos %d, flags %#o)", pid, fd, f->path, f->info.pos,
               f->info.flags);
  }
  if (auto s = w->Close(); !s.ok()) return s;
  return DumpFs(ctx);
}

absl::Status FileTableImage::Dump(DumpContext& ctx) {
  auto w = images::TypedImageWriter<criu::file_entry>::Create(ctx.images_dir + "/files.img",
                                                              images::Files());
  if (!w.ok()) return w.status();
  for (const criu::file_entry& e : ctx.files->entries()) {
    if (auto s = w->Write(e); !s.ok()) return s;
  }
  return w->Close();
}

// ---- restore ------------------------------------------------------------------

namespace {

// Opens a regular file, directory or device again as it was (flags, offset;
// the terminal of a shell job is the restoring shell's): a new fd.
absl::StatusOr<int> OpenReg(const criu::reg_file_entry& reg, int target_fd, int tty_fd,
                            bool shell_job, const std::map<std::string, int>& inherit_fds) {
  const std::string& path = reg.name();
  // --inherit-fd fd[N]:PATH (without the leading '/', as criu spells it).
  for (const std::string& key : {path, path.substr(path.starts_with("/") ? 1 : 0)}) {
    if (auto in = inherit_fds.find(key); in != inherit_fds.end()) {
      int fd = fcntl(in->second, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) {
        return absl::InternalError(
            absl::StrFormat("fd %d: the inherited fd for %s: %s", target_fd, key, strerror(errno)));
      }
      return fd;
    }
  }
  bool terminal = S_ISCHR(reg.mode()) && shell_job;
  if (terminal) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && !tty::IsTerminalDevice(st.st_rdev)) terminal = false;
  }
  if (terminal) {
    // --shell-job: the job's terminal is the one restore runs on.
    if (tty_fd < 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "fd %d was the terminal %s, but restore does not run on a terminal", target_fd, path));
    }
    int fd = fcntl(tty_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
      return absl::InternalError(absl::StrFormat("fd %d: %s", target_fd, strerror(errno)));
    return fd;
  }
  int fd = open(path.c_str(), static_cast<int>(reg.flags() & ~kNotReopenFlags) | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrFormat("fd %d: cannot open %s: %s", target_fd, path, strerror(errno)));
  }
  struct stat st;
  // Files opened for appending grow as others write to them; their size
  // says nothing about whether this is the same file.
  if (reg.has_size() && !(reg.flags() & O_APPEND) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) != reg.size()) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrFormat("fd %d: %s changed size since the dump (%d bytes then, %d now)", target_fd,
                        path, reg.size(), st.st_size));
  }
  if ((S_ISREG(reg.mode()) || S_ISDIR(reg.mode())) &&
      lseek(fd, static_cast<off_t>(reg.pos()), SEEK_SET) < 0) {
    close(fd);
    return absl::InternalError(
        absl::StrFormat("fd %d: seek %s to %d: %s", target_fd, path, reg.pos(), strerror(errno)));
  }
  return fd;
}

// Puts `fd` at `target` (closing `fd` unless `keep`) with the fd flags given.
absl::Status Place(int fd, int target, bool cloexec, bool keep) {
  if (fd != target) {
    if (dup2(fd, target) < 0) {
      int e = errno;
      if (!keep) close(fd);
      return absl::InternalError(absl::StrFormat("dup2 to fd %d: %s", target, strerror(e)));
    }
    if (!keep) close(fd);
  }
  fcntl(target, F_SETFD, cloexec ? FD_CLOEXEC : 0);
  return absl::OkStatus();
}

// cwd, root and umask from fs-PID.img.
absl::Status RestoreFs(RestoreContext& ctx,
                       const std::map<uint32_t, const criu::file_entry*>& by_id) {
  auto fs = images::ReadAll<criu::fs_entry>(
      absl::StrFormat("%s/fs-%d.img", ctx.images_dir, ctx.pid), images::Fs());
  if (!fs.ok()) return fs.status();
  if (fs->size() != 1) return absl::DataLossError("fs image: expected one entry");
  auto path_of = [&](uint32_t id) -> std::string {
    auto it = by_id.find(id);
    return it != by_id.end() && it->second->has_reg() ? it->second->reg().name() : "";
  };
  std::string root = path_of(fs->front().root_id());
  if (root != "/") {
    return absl::UnimplementedError(absl::StrFormat(
        "pid %d ran with root %s: chroot'ed tasks are not supported yet", ctx.pid, root));
  }
  std::string cwd = path_of(fs->front().cwd_id());
  if (chdir(cwd.c_str()) != 0) {
    return absl::NotFoundError(
        absl::StrFormat("cannot enter the working directory %s: %s", cwd, strerror(errno)));
  }
  if (fs->front().has_umask()) umask(static_cast<mode_t>(fs->front().umask()));
  log::Info("fds: pid %d: cwd %s", ctx.pid, cwd);
  return absl::OkStatus();
}

}  // namespace

absl::Status Fds::RestoreShared(RestoreContext& ctx) {
  // Regular files (and the terminal) that several processes hold in one
  // description are opened here, in the root, and inherited by all.
  auto tree = images::ReadAll<criu::pstree_entry>(ctx.images_dir + "/pstree.img", images::Pstree());
  if (!tree.ok()) return tree.status();
  // Counted per fd table: tasks sharing one (clone(CLONE_FILES)) hold its
  // files once, and its owner opens them itself.
  std::map<uint32_t, int> holders;  // file id -> number of fd tables
  std::set<uint32_t> tables;
  for (const auto& t : *tree) {
    if (t.threads_size() == 0) continue;  // a zombie has no fds
    auto files_id = FilesId(ctx.images_dir, static_cast<pid_t>(t.pid()));
    if (!files_id.ok()) return files_id.status();
    if (!tables.insert(*files_id).second) continue;
    auto fds = ReadTaskFdinfo(ctx.images_dir, static_cast<pid_t>(t.pid()));
    if (!fds.ok()) return fds.status();
    std::set<uint32_t> mine;
    for (const auto& fe : *fds) mine.insert(fe.id());
    for (uint32_t id : mine) ++holders[id];
  }
  auto files = images::ReadAll<criu::file_entry>(ctx.images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  for (const auto& f : *files) {
    auto h = holders.find(f.id());
    if (h == holders.end() || h->second < 2 || !f.has_reg() || ctx.inherited.count(f.id())) {
      continue;
    }
    auto fd = OpenReg(f.reg(), -1, ctx.tty_fd, ctx.shell_job, ctx.inherit_fds);
    if (!fd.ok()) return fd.status();
    if (auto s = ctx.Inherit(f.id(), *fd); !s.ok()) {
      return absl::Status(s.code(), f.reg().name() + ": " + std::string(s.message()));
    }
    log::Debug("fds: %s (file id %d) is shared by %d fd tables", f.reg().name(), f.id(), h->second);
  }
  return absl::OkStatus();
}

absl::Status Fds::Restore(RestoreContext& ctx) {
  auto files = images::ReadAll<criu::file_entry>(ctx.images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  std::map<uint32_t, const criu::file_entry*> by_id;
  for (const auto& f : *files) {
    by_id[f.id()] = &f;
    if (f.has_reg()) ctx.file_paths[f.id()] = f.reg().name();
  }
  if (ctx.shares_parent_files) {
    // The fd table is the parent's, and so are the fds in it (restored by
    // the table's owner); only the fs is this task's own.
    log::Info("fds: pid %d shares its parent's fd table: its fds are the owner's", ctx.pid);
    return RestoreFs(ctx, by_id);
  }
  auto fds = ReadTaskFdinfo(ctx.images_dir, ctx.pid);
  if (!fds.ok()) return fds.status();
  std::sort(fds->begin(), fds->end(), [](const auto& a, const auto& b) { return a.fd() < b.fd(); });

  // The fds this process holds now belong to the engine (moved up to
  // ctx.fd_base by the restore driver, with the inherited descriptions).
  std::set<int> engine(ctx.engine_fds.begin(), ctx.engine_fds.end());
  for (const auto& [id, fd] : ctx.inherited) engine.insert(fd);
  std::map<uint32_t, int> opened;  // file id -> the fd it was first opened at
  for (const criu::fdinfo_entry& fe : *fds) {
    int target = static_cast<int>(fe.fd());
    bool cloexec = fe.flags() & FD_CLOEXEC;
    if (engine.count(target)) {
      return absl::UnimplementedError(absl::StrFormat(
          "fd %d: the restore engine uses that number itself (raise RLIMIT_NOFILE for criu "
          "restore)",
          target));
    }
    if (auto it = opened.find(fe.id()); it != opened.end()) {
      // Another fd of the same open file description: share it again.
      if (auto s = Place(it->second, target, cloexec, true); !s.ok()) return s;
      continue;
    }
    opened[fe.id()] = target;
    if (auto in = ctx.inherited.find(fe.id()); in != ctx.inherited.end()) {
      if (auto s = Place(in->second, target, cloexec, true); !s.ok()) return s;
      continue;
    }
    auto it = by_id.find(fe.id());
    if (it == by_id.end()) {
      return absl::DataLossError(absl::StrFormat(
          "fdinfo: fd %d refers to file id %d, which files.img lacks", fe.fd(), fe.id()));
    }
    if (fe.type() == criu::PIDFD && it->second->has_pidfd()) {
      auto fd = OpenPidfd(it->second->pidfd(), target);
      if (!fd.ok()) return fd.status();
      if (auto s = Place(*fd, target, cloexec, false); !s.ok()) return s;
      continue;
    }
    if (fe.type() != criu::REG || !it->second->has_reg()) {
      return absl::UnimplementedError(
          absl::StrFormat("fd %d: files of type %s are not supported yet", fe.fd(),
                          criu::fd_types_Name(fe.type())));
    }
    auto fd = OpenReg(it->second->reg(), target, ctx.tty_fd, ctx.shell_job, ctx.inherit_fds);
    if (!fd.ok()) return fd.status();
    if (auto s = Place(*fd, target, cloexec, false); !s.ok()) return s;
  }
  // This task's fds are in place: the inherited descriptions it did not
  // take are not its own.
  for (const auto& [id, fd] : ctx.inherited) close(fd);
  ctx.inherited.clear();
  log::Info("fds: pid %d: %d fds restored", ctx.pid, fds->size());
  return RestoreFs(ctx, by_id);
}

}  // namespace crpp::resources
