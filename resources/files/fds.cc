#include "resources/files/fds.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"
#include "fs.pb.h"

namespace crpp::resources {
namespace {

constexpr uint32_t kFilesId = 1;  // one fd table (see tree.cc)

// Open flags that describe how a file was opened, not how to open it again.
constexpr uint32_t kNotReopenFlags = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC;

struct FdFile {
  int fd;
  std::string path;
  struct stat st;
  proc::FdInfo info;
};

absl::StatusOr<FdFile> Inspect(pid_t pid, int fd) {
  FdFile f{fd, {}, {}, {}};
  std::string link = absl::StrFormat("/proc/%d/fd/%d", pid, fd);
  auto target = proc::ReadLink(link);
  if (!target.ok()) return target.status();
  f.path = *target;
  if (stat(link.c_str(), &f.st) != 0) {
    return absl::NotFoundError(absl::StrFormat("pid %d fd %d: stat: %s", pid, fd, strerror(errno)));
  }
  auto info = proc::ReadFdInfo(pid, fd);
  if (!info.ok()) return info.status();
  f.info = *info;
  return f;
}

// Why an fd cannot be dumped yet, or "" if it can.
std::string Unsupported(const FdFile& f, bool shell_job) {
  mode_t m = f.st.st_mode;
  if (S_ISREG(m) || S_ISDIR(m)) {
    if (std::string_view(f.path).ends_with(" (deleted)")) {
      return "an unlinked (deleted) file: not supported yet";
    }
    if (f.path.empty() || f.path[0] != '/') return "a file without a path (" + f.path + ")";
    return "";
  }
  if (S_ISCHR(m)) {
    if (IsTerminalDevice(major(f.st.st_rdev)) && !shell_job) {
      return "the terminal " + f.path +
             ": dump with --shell-job to restore it on the caller's "
             "terminal";
    }
    return "";
  }
  if (S_ISFIFO(m)) return "a pipe or FIFO (" + f.path + "): not supported yet";
  if (S_ISSOCK(m)) return "a socket (" + f.path + "): not supported yet";
  if (f.path.rfind("anon_inode:", 0) == 0) return "an " + f.path + " fd: not supported yet";
  return "of an unsupported kind (" + f.path + ")";
}

criu::fown_entry NoOwner() {
  criu::fown_entry o;
  o.set_uid(0);
  o.set_euid(0);
  o.set_signum(0);
  o.set_pid_type(0);
  o.set_pid(0);
  return o;
}

}  // namespace

bool IsTerminalDevice(unsigned maj) {
  // 4: virtual consoles and serial; 5: /dev/tty, console, ptmx; 136-143: pts.
  return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143);
}

absl::Status Fds::Precheck(DumpContext& ctx) {
  auto fds = proc::ListFds(ctx.root_pid);
  if (!fds.ok()) return fds.status();
  for (int fd : *fds) {
    auto f = Inspect(ctx.root_pid, fd);
    if (!f.ok()) return f.status();
    std::string why = Unsupported(*f, ctx.shell_job);
    if (!why.empty()) {
      return absl::UnimplementedError(absl::StrFormat("pid %d fd %d is %s", ctx.root_pid, fd, why));
    }
  }
  return absl::OkStatus();
}

absl::Status Fds::Dump(DumpContext& ctx) {
  pid_t pid = ctx.root_pid;
  auto fds = proc::ListFds(pid);
  if (!fds.ok()) return fds.status();
  auto w = images::TypedImageWriter<criu::fdinfo_entry>::Create(
      absl::StrFormat("%s/fdinfo-%d.img", ctx.images_dir, kFilesId), images::Fdinfo());
  if (!w.ok()) return w.status();
  struct Seen {
    int fd;
    dev_t dev;
    ino_t ino;
    uint32_t id;
  };
  std::vector<Seen> seen;
  for (int fd : *fds) {
    auto f = Inspect(pid, fd);
    if (!f.ok()) return f.status();
    if (std::string why = Unsupported(*f, ctx.shell_job); !why.empty()) {
      return absl::UnimplementedError(absl::StrFormat("pid %d fd %d is %s", pid, fd, why));
    }
    // fds made by dup() share one open file description (and its offset):
    // kcmp tells, and they share one file id so restore dups them again.
    uint32_t shared_id = 0;
    for (const Seen& s : seen) {
      if (s.dev == f->st.st_dev && s.ino == f->st.st_ino &&
          syscall(SYS_kcmp, pid, pid, KCMP_FILE, s.fd, fd) == 0) {
        shared_id = s.id;
        break;
      }
    }
    if (shared_id != 0) {
      criu::fdinfo_entry fe;
      fe.set_id(shared_id);
      fe.set_flags((f->info.flags & O_CLOEXEC) ? FD_CLOEXEC : 0);
      fe.set_type(criu::REG);
      fe.set_fd(static_cast<uint32_t>(fd));
      if (auto s = w->Write(fe); !s.ok()) return s;
      log::Debug("fds: pid %d fd %d shares file id %d", pid, fd, shared_id);
      continue;
    }
    criu::file_entry e;
    e.set_type(criu::REG);
    e.set_id(0);
    auto* reg = e.mutable_reg();
    reg->set_id(0);
    reg->set_flags(f->info.flags & ~O_CLOEXEC);
    reg->set_pos(f->info.pos);
    *reg->mutable_fown() = NoOwner();
    reg->set_name(f->path);
    if (f->info.mnt_id >= 0) reg->set_mnt_id(f->info.mnt_id);
    if (S_ISREG(f->st.st_mode)) reg->set_size(static_cast<uint64_t>(f->st.st_size));
    reg->set_mode(f->st.st_mode);
    uint32_t id = ctx.files->Add(std::move(e));
    seen.push_back({fd, f->st.st_dev, f->st.st_ino, id});
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

  // fs: cwd, root, umask.
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

absl::Status Reopen(const criu::reg_file_entry& reg, int target_fd, bool cloexec, int tty_fd,
                    bool shell_job) {
  const std::string& path = reg.name();
  int fd = -1;
  bool terminal = S_ISCHR(reg.mode()) && shell_job;
  if (terminal) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && !IsTerminalDevice(major(st.st_rdev))) terminal = false;
  }
  if (terminal) {
    // --shell-job: the job's terminal is the one restore runs on.
    if (tty_fd < 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "fd %d was the terminal %s, but restore does not run on a terminal", target_fd, path));
    }
    fd = fcntl(tty_fd, F_DUPFD, 0);
  } else {
    fd = open(path.c_str(), static_cast<int>(reg.flags() & ~kNotReopenFlags));
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
          absl::StrFormat("fd %d: %s changed size since the dump (%d bytes then, %d now)",
                          target_fd, path, reg.size(), st.st_size));
    }
    if (S_ISREG(reg.mode()) || S_ISDIR(reg.mode())) {
      if (lseek(fd, static_cast<off_t>(reg.pos()), SEEK_SET) < 0) {
        close(fd);
        return absl::InternalError(absl::StrFormat("fd %d: seek %s to %d: %s", target_fd, path,
                                                   reg.pos(), strerror(errno)));
      }
    }
  }
  if (fd < 0) return absl::InternalError(absl::StrFormat("fd %d: %s", target_fd, strerror(errno)));
  if (fd != target_fd) {
    if (dup2(fd, target_fd) < 0) {
      close(fd);
      return absl::InternalError(absl::StrFormat("dup2 to fd %d: %s", target_fd, strerror(errno)));
    }
    close(fd);
  }
  fcntl(target_fd, F_SETFD, cloexec ? FD_CLOEXEC : 0);
  return absl::OkStatus();
}

}  // namespace

absl::Status Fds::Restore(RestoreContext& ctx) {
  auto files = images::ReadAll<criu::file_entry>(ctx.images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  std::map<uint32_t, const criu::file_entry*> by_id;
  for (const auto& f : *files) {
    by_id[f.id()] = &f;
    if (f.has_reg()) ctx.file_paths[f.id()] = f.reg().name();
  }
  auto fds = images::ReadAll<criu::fdinfo_entry>(
      absl::StrFormat("%s/fdinfo-%d.img", ctx.images_dir, kFilesId), images::Fdinfo());
  if (!fds.ok()) return fds.status();
  std::sort(fds->begin(), fds->end(), [](const auto& a, const auto& b) { return a.fd() < b.fd(); });

  // The fds this process holds now belong to the engine; the ones it still
  // needs were moved above kEngineFdBase by the restore driver.
  int tty_fd = ctx.tty_fd;
  std::map<uint32_t, int> opened;  // file id -> the fd it was first opened at
  for (const criu::fdinfo_entry& fe : *fds) {
    int target = static_cast<int>(fe.fd());
    if (std::find(ctx.engine_fds.begin(), ctx.engine_fds.end(), target) != ctx.engine_fds.end()) {
      return absl::UnimplementedError(absl::StrFormat(
          "fd %d: the restore engine uses that number itself (raise RLIMIT_NOFILE for criu "
          "restore)",
          target));
    }
    if (auto it = opened.find(fe.id()); it != opened.end()) {
      // Another fd of the same open file description: share it again.
      if (dup2(it->second, target) < 0) {
        return absl::InternalError(
            absl::StrFormat("dup2 of fd %d to %d: %s", it->second, target, strerror(errno)));
      }
      fcntl(target, F_SETFD, (fe.flags() & FD_CLOEXEC) ? FD_CLOEXEC : 0);
      continue;
    }
    opened[fe.id()] = target;
    auto it = by_id.find(fe.id());
    if (it == by_id.end()) {
      return absl::DataLossError(absl::StrFormat(
          "fdinfo: fd %d refers to file id %d, which files.img lacks", fe.fd(), fe.id()));
    }
    if (fe.type() != criu::REG || !it->second->has_reg()) {
      return absl::UnimplementedError(
          absl::StrFormat("fd %d: files of type %s are not supported yet", fe.fd(),
                          criu::fd_types_Name(fe.type())));
    }
    if (auto s = Reopen(it->second->reg(), static_cast<int>(fe.fd()), fe.flags() & FD_CLOEXEC,
                        tty_fd, ctx.shell_job);
        !s.ok()) {
      return s;
    }
  }

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
  log::Info("fds: %d fds restored, cwd %s", fds->size(), cwd);
  return absl::OkStatus();
}

}  // namespace crpp::resources
