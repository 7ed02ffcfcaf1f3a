#include "resources/files/ghost.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"
#include "ghost-file.pb.h"
#include "remap-file-path.pb.h"

namespace crpp::resources {
namespace {

constexpr std::string_view kDeleted = " (deleted)";
// Open flags that say how a file was opened, not how to open it again.
constexpr uint32_t kNotReopenFlags = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC;

const images::ImageKind& RemapKind() { return *images::FindKindByName("REMAP_FPATH"); }
const images::ImageKind& GhostKind() { return *images::FindKindByName("GHOST_FILE"); }

std::string GhostImage(const std::string& dir, uint32_t ghost_id) {
  return absl::StrFormat("%s/ghost-file-%x.img", dir, ghost_id);
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

// The kernel's encoding of a device number, as CRIU's images hold it.
uint32_t KernelDev(dev_t d) { return (major(d) << 20) | minor(d); }

// An fd of a task that refers to an unlinked regular file.
struct Unlinked {
  std::string path;  // the old path, without " (deleted)"
  struct stat st;
  bool linked = false;  // other hard links keep it (--link-remap)
};

// What `pid`'s `fd` is if it is a deleted regular file; `path` stays empty
// when it is not. A deleted file that another hard link keeps, or one too
// large for the limit, is refused here.
absl::StatusOr<Unlinked> LookAt(pid_t pid, const DumpContext::OpenFd& open,
                                const DumpContext& ctx) {
  Unlinked u{};
  const int fd = open.fd;
  const std::string* target = &open.link;
  if (!std::string_view(*target).ends_with(kDeleted)) return u;
  if (target->rfind("/memfd:", 0) == 0) return u;  // a memfd: the shmem plugin's
  u.st = open.st;
  if (!S_ISREG(u.st.st_mode)) return u;  // directories and the rest: the Fds plugin says
  std::string path = target->substr(0, target->size() - kDeleted.size());
  u.linked = u.st.st_nlink != 0;
  if (u.linked && !ctx.link_remap) {
    return absl::UnimplementedError(absl::StrFormat(
        "pid %d fd %d is %s, unlinked from that path but kept by %d other hard link(s): "
        "dump with --link-remap to link it back under a temporary name",
        pid, fd, path, u.st.st_nlink));
  }
  if (path.empty() || path[0] != '/') {
    return absl::UnimplementedError(
        absl::StrFormat("pid %d fd %d is a deleted file without a path (%s)", pid, fd, *target));
  }
  if (!u.linked && static_cast<uint64_t>(u.st.st_size) > ctx.ghost_limit) {
    return absl::UnimplementedError(absl::StrFormat(
        "pid %d fd %d is the deleted file %s of %d bytes, more than the ghost limit of %d "
        "(raise it with --ghost-limit)",
        pid, fd, path, u.st.st_size, ctx.ghost_limit));
  }
  u.path = std::move(path);
  return u;
}

// The contents of the deleted file `pid`'s `fd` refers to, read through an
// fd of our own (the task's offset is left alone).
absl::StatusOr<std::string> ReadContents(pid_t pid, int fd, uint64_t size) {
  std::string what = absl::StrFormat("pid %d fd %d", pid, fd);
  int own = open(absl::StrFormat("/proc/%d/fd/%d", pid, fd).c_str(), O_RDONLY | O_CLOEXEC);
  if (own < 0) return Errno(what + ": opening the deleted file");
  std::string data(size, '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = pread(own, data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(own);
      errno = e;
      return Errno(what + ": reading the deleted file");
    }
    if (n == 0) break;  // it shrank meanwhile: the rest reads as zeros
    got += static_cast<size_t>(n);
  }
  close(own);
  return data;
}

absl::Status WriteGhost(const std::string& dir, uint32_t ghost_id, const struct stat& st,
                        const std::string& data) {
  criu::ghost_file_entry g;
  g.set_uid(st.st_uid);
  g.set_gid(st.st_gid);
  g.set_mode(st.st_mode);
  g.set_dev(KernelDev(st.st_dev));
  g.set_ino(st.st_ino);
  g.mutable_atim()->set_tv_sec(static_cast<uint64_t>(st.st_atim.tv_sec));
  g.mutable_atim()->set_tv_usec(static_cast<uint64_t>(st.st_atim.tv_nsec / 1000));
  g.mutable_mtim()->set_tv_sec(static_cast<uint64_t>(st.st_mtim.tv_sec));
  g.mutable_mtim()->set_tv_usec(static_cast<uint64_t>(st.st_mtim.tv_nsec / 1000));
  g.set_chunks(false);
  g.set_size(static_cast<uint64_t>(st.st_size));
  auto w = images::ImageWriter::Create(GhostImage(dir, ghost_id), GhostKind());
  if (!w.ok()) return w.status();
  if (auto s = (*w)->Write(g); !s.ok()) return s;
  if (auto s = (*w)->WritePayload(data); !s.ok()) return s;
  return (*w)->Close();
}

// --link-remap: gives the inode `pid`'s `fd` holds (unlinked from `path`,
// kept by other links) a name of its own next to `path`, once per inode,
// and returns that name's file id. The dump driver removes the name again if
// the dump fails; a successful restore does (Ghosts::RemoveLinks).
absl::StatusOr<uint32_t> LinkBack(DumpContext& ctx, pid_t pid, int fd, const std::string& path,
                                  std::map<std::pair<dev_t, ino_t>, uint32_t>& links) {
  struct stat st;
  std::string proc = absl::StrFormat("/proc/%d/fd/%d", pid, fd);
  if (stat(proc.c_str(), &st) != 0) return Errno(absl::StrFormat("pid %d fd %d: stat", pid, fd));
  auto [it, fresh] = links.try_emplace({st.st_dev, st.st_ino}, 0);
  if (!fresh) return it->second;
  std::string dir = path.substr(0, path.rfind('/'));
  std::string link;
  for (int n = 0;; ++n) {
    link = n == 0 ? absl::StrFormat("%s/link_remap.%d", dir, ctx.files->entries().size())
                  : absl::StrFormat("%s/link_remap.%d.%d", dir, ctx.files->entries().size(), n);
    if (linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, link.c_str(), AT_SYMLINK_FOLLOW) == 0) break;
    if (errno != EEXIST || n == 100) {
      return Errno(absl::StrFormat("pid %d fd %d: linking %s back as %s", pid, fd, path, link));
    }
  }
  ctx.remove_on_failure.push_back(link);
  it->second = ctx.files->AddPath(link, O_RDONLY);
  log::Info("ghosts: %s (deleted, %d other links) linked back as %s", path, st.st_nlink, link);
  return it->second;
}

}  // namespace

absl::Status Ghosts::Precheck(DumpContext& ctx) {
  return ctx.ForEachTreeFd([&ctx](pid_t pid, const DumpContext::OpenFd& open) {
    return LookAt(pid, open, ctx).status();
  });
}

absl::Status Ghosts::Dump(DumpContext& ctx) {
  // Written even when empty, as CRIU does.
  auto remaps = images::TypedImageWriter<criu::remap_file_path_entry>::Create(
      ctx.images_dir + "/remap-fpath.img", RemapKind());
  if (!remaps.ok()) return remaps.status();
  std::map<std::pair<dev_t, ino_t>, uint32_t> ghost_ids;  // inode -> its ghost image
  std::map<std::pair<dev_t, ino_t>, uint32_t> links;      // inode -> its link's file id
  absl::Status walked = ctx.ForEachTreeFd([&](pid_t pid,
                                              const DumpContext::OpenFd& open) -> absl::Status {
    const int fd = open.fd;
    auto u = LookAt(pid, open, ctx);
    if (!u.ok()) return u.status();
    if (u->path.empty()) return absl::OkStatus();
    uint32_t id = ctx.files->FindDescription(pid, fd, u->st.st_dev, u->st.st_ino);
    if (id == 0) {
      auto info = DumpContext::InfoOf(pid, open);
      if (!info.ok()) return info.status();
      criu::file_entry e;
      e.set_type(criu::REG);
      e.set_id(0);
      auto* reg = e.mutable_reg();
      reg->set_id(0);
      reg->set_flags(info->flags & ~O_CLOEXEC);
      reg->set_pos(info->pos);
      SetNoOwner(*reg->mutable_fown());
      reg->set_name(u->path);
      if (info->mnt_id >= 0) reg->set_mnt_id(info->mnt_id);
      reg->set_size(static_cast<uint64_t>(u->st.st_size));
      reg->set_mode(u->st.st_mode);
      id = ctx.files->Add(std::move(e));
      ctx.files->AddDescription(id, pid, fd, u->st.st_dev, u->st.st_ino);

      criu::remap_file_path_entry r;
      r.set_orig_id(id);
      if (u->linked) {
        auto link_id = LinkBack(ctx, pid, fd, u->path, links);
        if (!link_id.ok()) return link_id.status();
        r.set_remap_id(*link_id);
        r.set_remap_type(criu::LINKED);
        if (auto s = remaps->Write(r); !s.ok()) return s;
        ctx.fd_ids[{pid, fd}] = {id, criu::REG};
        return absl::OkStatus();
      }
      auto [it, fresh] = ghost_ids.try_emplace({u->st.st_dev, u->st.st_ino}, 0);
      if (fresh) {
        it->second = static_cast<uint32_t>(ghost_ids.size());
        auto data = ReadContents(pid, fd, static_cast<uint64_t>(u->st.st_size));
        if (!data.ok()) return data.status();
        if (auto s = WriteGhost(ctx.images_dir, it->second, u->st, *data); !s.ok()) return s;
        log::Info("ghosts: %s (deleted, %d bytes) is ghost %d", u->path, data->size(), it->second);
      }
      r.set_remap_id(it->second);
      r.set_remap_type(criu::GHOST);
      if (auto s = remaps->Write(r); !s.ok()) return s;
    }
    ctx.fd_ids[{pid, fd}] = {id, criu::REG};
    log::Debug("ghosts: pid %d fd %d is file id %d (deleted %s)", pid, fd, id, u->path);
    return absl::OkStatus();
  });
  if (!walked.ok()) return walked;
  return remaps->Close();
}

// ---- restore ------------------------------------------------------------------

namespace {

struct Ghost {
  criu::ghost_file_entry entry;
  std::string data;  // the whole contents (chunks already placed)
};

absl::StatusOr<Ghost> ReadGhost(const std::string& dir, uint32_t ghost_id) {
  Ghost g;
  auto r = images::ImageReader::Open(GhostImage(dir, ghost_id), &GhostKind());
  if (!r.ok()) return r.status();
  auto more = (*r)->Next(g.entry);
  if (!more.ok()) return more.status();
  if (!*more) return (*r)->Error("no ghost_file_entry");
  if (!S_ISREG(g.entry.mode())) {
    return absl::UnimplementedError(absl::StrFormat(
        "ghost file %x has mode %o: only regular files are supported", ghost_id, g.entry.mode()));
  }
  if (!g.entry.chunks()) {
    if (auto s = (*r)->ReadToEnd(g.data); !s.ok()) return s;
    return g;
  }
  // Chunks: (len, off) entries, each followed by its bytes; the rest is holes.
  g.data.assign(g.entry.size(), '\0');
  criu::ghost_chunk_entry c;
  for (;;) {
    auto next = (*r)->Next(c);
    if (!next.ok()) return next.status();
    if (!*next) break;
    if (c.off() > g.entry.size() || c.len() > g.entry.size() - c.off()) {
      return (*r)->Error("a chunk past the file's size");
    }
    std::string bytes;
    if (auto s = (*r)->ReadPayload(c.len(), bytes); !s.ok()) return s;
    g.data.replace(c.off(), c.len(), bytes);
  }
  return g;
}

// Writes the ghost's contents and attributes into a new file at `path`.
absl::Status CreateFile(const std::string& path, const Ghost& g) {
  int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("creating " + path);
  absl::Status status;
  for (size_t off = 0; status.ok() && off < g.data.size();) {
    ssize_t n = write(fd, g.data.data() + off, g.data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) status = Errno("writing " + path);
    off += n > 0 ? static_cast<size_t>(n) : 0;
  }
  uint64_t size = g.entry.has_size() ? g.entry.size() : g.data.size();
  if (status.ok() && ftruncate(fd, static_cast<off_t>(size)) != 0) {
    status = Errno("setting the size of " + path);
  }
  if (status.ok() && fchown(fd, g.entry.uid(), g.entry.gid()) != 0) {
    status = Errno("setting the owner of " + path);
  }
  if (status.ok() && fchmod(fd, g.entry.mode() & 07777) != 0) {
    status = Errno("setting the mode of " + path);
  }
  if (status.ok() && g.entry.has_atim() && g.entry.has_mtim()) {
    struct timespec times[2] = {
        {static_cast<time_t>(g.entry.atim().tv_sec()),
         static_cast<long>(g.entry.atim().tv_usec() * 1000)},
        {static_cast<time_t>(g.entry.mtim().tv_sec()),
         static_cast<long>(g.entry.mtim().tv_usec() * 1000)},
    };
    futimens(fd, times);  // times are a courtesy: no failure
  }
  close(fd);
  if (!status.ok()) unlink(path.c_str());
  return status;
}

}  // namespace

namespace {

using Descriptions = std::vector<std::pair<uint32_t, const criu::reg_file_entry*>>;

// Opens every description of a deleted file at `path` with its flags and
// offset and hands it to the tasks (RestoreContext::Inherit).
absl::Status OpenAll(RestoreContext& ctx, const std::string& path, const std::string& name,
                     const Descriptions& descriptions) {
  for (const auto& [file_id, reg] : descriptions) {
    int fd = open(path.c_str(), static_cast<int>(reg->flags() & ~kNotReopenFlags) | O_CLOEXEC);
    if (fd < 0) {
      return Errno(absl::StrFormat("deleted file %s (file id %d): reopening it", name, file_id));
    }
    if (lseek(fd, static_cast<off_t>(reg->pos()), SEEK_SET) < 0) {
      absl::Status s = Errno(absl::StrFormat("deleted file %s: seek to %d", name, reg->pos()));
      close(fd);
      return s;
    }
    if (auto s = ctx.Inherit(file_id, fd); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RestoreGhost(RestoreContext& ctx, uint32_t ghost_id,
                          const Descriptions& descriptions) {
  auto g = ReadGhost(ctx.images_dir, ghost_id);
  if (!g.ok()) return g.status();
  const std::string& name = descriptions.front().second->name();
  size_t slash = name.rfind('/');
  if (slash == std::string::npos) {
    return absl::DataLossError(absl::StrFormat("ghost file %x: bad path %s", ghost_id, name));
  }
  // A temporary name in the file's old directory, then its old name if
  // that is free, so the restored fds show the path they showed.
  std::string path = absl::StrFormat("%s/.crpp-ghost-%x-%d", name.substr(0, slash), ghost_id,
                                     static_cast<int>(getpid()));
  if (auto s = CreateFile(path, *g); !s.ok()) {
    return absl::Status(s.code(), absl::StrFormat("deleted file %s: %s", name, s.message()));
  }
  if (renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, name.c_str(), RENAME_NOREPLACE) == 0) {
    path = name;
  }
  absl::Status status = OpenAll(ctx, path, name, descriptions);
  // The tasks hold it now: it is deleted again, as it was.
  if (unlink(path.c_str()) != 0 && status.ok()) status = Errno("unlinking " + path);
  if (status.ok()) {
    log::Info("ghosts: %s restored deleted (%d bytes, %d descriptions)", name, g->data.size(),
              descriptions.size());
  }
  return status;
}

// --link-remap: the file is still there under the name the dump gave it;
// it is opened under its old name (linked there for the time it takes) when
// that is free. The dump's name goes once the restore succeeded.
absl::Status RestoreLinked(RestoreContext& ctx, const std::string& link,
                           const Descriptions& descriptions) {
  const std::string& name = descriptions.front().second->name();
  std::string path = link;
  if (::link(link.c_str(), name.c_str()) == 0) path = name;
  absl::Status status = OpenAll(ctx, path, name, descriptions);
  if (path == name && unlink(name.c_str()) != 0 && status.ok()) {
    status = Errno("unlinking " + name);
  }
  if (status.ok()) log::Info("ghosts: %s restored deleted through %s", name, link);
  return status;
}

struct Remaps {
  std::vector<criu::file_entry> files;
  std::map<uint32_t, Descriptions> ghosts;    // ghost id -> descriptions
  std::map<std::string, Descriptions> links;  // link's path -> descriptions
};

absl::StatusOr<Remaps> ReadRemaps(const std::string& dir) {
  Remaps out;
  std::string remap_path = dir + "/remap-fpath.img";
  if (access(remap_path.c_str(), F_OK) != 0) return out;  // nothing was deleted
  auto remaps = images::ReadAll<criu::remap_file_path_entry>(remap_path, RemapKind());
  if (!remaps.ok()) return remaps.status();
  if (remaps->empty()) return out;
  auto files = images::ReadAll<criu::file_entry>(dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  out.files = std::move(*files);
  std::map<uint32_t, const criu::reg_file_entry*> regs;
  for (const auto& f : out.files) {
    if (f.has_reg()) regs[f.id()] = &f.reg();
  }
  for (const auto& r : *remaps) {
    auto it = regs.find(r.orig_id());
    if (it == regs.end()) {
      return absl::DataLossError(absl::StrFormat(
          "remap-fpath.img: file id %d is no regular file of files.img", r.orig_id()));
    }
    if (r.remap_type() == criu::GHOST) {
      out.ghosts[r.remap_id()].emplace_back(it->first, it->second);
    } else if (r.remap_type() == criu::LINKED) {
      auto link = regs.find(r.remap_id());
      if (link == regs.end()) {
        return absl::DataLossError(absl::StrFormat(
            "remap-fpath.img: file id %d is linked to file id %d, which files.img lacks",
            r.orig_id(), r.remap_id()));
      }
      out.links[link->second->name()].emplace_back(it->first, it->second);
    } else {
      return absl::UnimplementedError(
          absl::StrFormat("remap-fpath.img: file id %d is remapped as %s: not supported yet",
                          r.orig_id(), criu::remap_type_Name(r.remap_type())));
    }
  }
  return out;
}

}  // namespace

absl::Status Ghosts::Restore(RestoreContext& ctx) {
  auto remaps = ReadRemaps(ctx.images_dir);
  if (!remaps.ok()) return remaps.status();
  for (const auto& [ghost_id, descriptions] : remaps->ghosts) {
    if (auto s = RestoreGhost(ctx, ghost_id, descriptions); !s.ok()) return s;
  }
  for (const auto& [link, descriptions] : remaps->links) {
    if (auto s = RestoreLinked(ctx, link, descriptions); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Ghosts::RemoveLinks(const std::string& images_dir) {
  auto remaps = ReadRemaps(images_dir);
  if (!remaps.ok()) return remaps.status();
  absl::Status status;
  for (const auto& [link, descriptions] : remaps->links) {
    if (unlink(link.c_str()) != 0 && errno != ENOENT && status.ok()) {
      status = Errno("removing " + link);
    }
  }
  return status;
}

}  // namespace crpp::resources
