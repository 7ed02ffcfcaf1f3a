#include "resources/mm/shmem.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"
#include "memfd.pb.h"
#include "mm.pb.h"
#include "pagemap.pb.h"
#include "pstree.pb.h"
#include "resources/common/descriptions.h"
#include "resources/mm/memory.h"

namespace crpp::resources {
namespace {

constexpr uint64_t kPage = 4096;

using descriptions::Errno;

// One shared memory object of the tree.
struct Object {
  bool memfd = false;
  std::string name;    // a memfd's name
  std::string source;  // a /proc path that opens it
  uint64_t size = 0;
  uint32_t uid = 0, gid = 0, mode = 0, seals = 0;
};

// "/memfd:NAME" -> NAME.
std::string MemfdName(const std::string& path) { return path.substr(strlen("/memfd:")); }

absl::Status Describe(const std::string& source, bool memfd, const std::string& name, Object& o) {
  int fd = open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(source);
  struct stat st;
  int r = fstat(fd, &st);
  int seals = memfd ? fcntl(fd, F_GET_SEALS) : 0;
  close(fd);
  if (r != 0) return Errno(source + ": fstat");
  o.memfd = memfd;
  o.name = name;
  o.source = source;
  o.size = static_cast<uint64_t>(st.st_size);
  o.uid = st.st_uid;
  o.gid = st.st_gid;
  o.mode = st.st_mode;
  o.seals = seals > 0 ? static_cast<uint32_t>(seals) : 0;
  return absl::OkStatus();
}

criu::file_entry MemfdEntry(uint32_t flags, uint64_t pos, uint64_t ino) {
  criu::file_entry e;
  e.set_type(criu::MEMFD);
  e.set_id(0);
  auto* m = e.mutable_memfd();
  m->set_id(0);
  m->set_flags(flags);
  m->set_pos(pos);
  SetNoOwner(*m->mutable_fown());
  m->set_inode_id(static_cast<uint32_t>(ino));
  return e;
}

// Writes the object's contents (its data extents, holes skipped) to
// pagemap-shmem-SHMID.img and pages-PAGES_ID.img.
absl::Status DumpContents(const DumpContext& ctx, uint64_t shmid, const Object& o,
                          uint32_t pages_id, uint64_t& pages_written) {
  int src = open(o.source.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) return Errno(o.source);
  std::string pages_path = absl::StrFormat("%s/pages-%d.img", ctx.images_dir, pages_id);
  int dst = open(pages_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (dst < 0) {
    close(src);
    return Errno(pages_path);
  }
  absl::Status status;
  auto pw = images::ImageWriter::Create(
      absl::StrFormat("%s/pagemap-shmem-%d.img", ctx.images_dir, shmid), images::Pagemap());
  if (!pw.ok()) status = pw.status();
  criu::pagemap_head head;
  head.set_pages_id(pages_id);
  if (status.ok()) status = (*pw)->Write(head);
  std::vector<char> buf(1 << 20);
  for (off_t at = 0; status.ok() && static_cast<uint64_t>(at) < o.size;) {
    off_t data = lseek(src, at, SEEK_DATA);
    if (data < 0) break;  // only a hole is left
    off_t hole = lseek(src, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(o.size);
    const uint64_t from = static_cast<uint64_t>(data) & ~(kPage - 1);
    const uint64_t to = std::min<uint64_t>((static_cast<uint64_t>(hole) + kPage - 1) & ~(kPage - 1),
                                           (o.size + kPage - 1) & ~(kPage - 1));
    criu::pagemap_entry pe;
    pe.set_vaddr(from);
    pe.set_compat_nr_pages(static_cast<uint32_t>((to - from) / kPage));
    pe.set_flags(kPePresent);
    pe.set_nr_pages((to - from) / kPage);
    status = (*pw)->Write(pe);
    for (uint64_t off = from; status.ok() && off < to;) {
      size_t want = std::min<uint64_t>(buf.size(), to - off);
      ssize_t n = pread(src, buf.data(), want, static_cast<off_t>(off));
      if (n < 0) {
        status = Errno(o.source + ": read");
        break;
      }
      // Past the end of the object the last page is zeros.
      memset(buf.data() + n, 0, want - static_cast<size_t>(n));
      if (write(dst, buf.data(), want) != static_cast<ssize_t>(want)) {
        status = Errno(pages_path);
      }
      off += want;
    }
    pages_written += (to - from) / kPage;
    at = static_cast<off_t>(to);
  }
  close(src);
  if (close(dst) != 0 && status.ok()) status = Errno(pages_path);
  if (status.ok()) status = (*pw)->Close();
  return status;
}

}  // namespace

absl::Status Shmem::Dump(DumpContext& ctx) {
  std::map<uint64_t, Object> objects;  // by inode: the shmid
  auto status = descriptions::ForEachDescription(
      ctx, [](std::string_view link) { return link.starts_with("/memfd:"); }, criu::MEMFD,
      [&objects](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        std::string name = MemfdName(f.link);
        if (name.ends_with(" (deleted)")) name.resize(name.size() - strlen(" (deleted)"));
        if (!objects.count(f.st.st_ino)) {
          auto s = Describe(absl::StrFormat("/proc/%d/fd/%d", f.pid, f.fd), true, name,
                            objects[f.st.st_ino]);
          if (!s.ok()) return s;
        }
        auto pos = f.info.Number("pos", 10, descriptions::Where(f.pid, f.fd));
        if (!pos.ok()) return pos.status();
        e = MemfdEntry(f.flags, *pos, f.st.st_ino);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  for (const TreeTask& t : ctx.tree) {
    if (t.zombie() || t.maps == nullptr) continue;
    for (const proc::Vma& v : *t.maps) {
      if (!v.shared || !v.is_file()) continue;
      const bool memfd = v.path.rfind("/memfd:", 0) == 0;
      const bool anon = v.path == "/dev/zero" && v.deleted;
      if (!memfd && !anon) continue;
      if (!objects.count(v.inode)) {
        std::string source = absl::StrFormat("/proc/%d/map_files/%x-%x", t.pid, v.start, v.end);
        auto s = Describe(source, memfd, memfd ? MemfdName(v.path) : "", objects[v.inode]);
        if (!s.ok()) return s;
      }
      // The mappings of a memfd refer to a MEMFD entry of their own.
      if (memfd && !ctx.memfd_ids.count(v.inode)) {
        ctx.memfd_ids[v.inode] = ctx.files->Add(MemfdEntry(O_RDWR, 0, v.inode));
      }
    }
  }
  auto w = images::TypedImageWriter<criu::memfd_inode_entry>::Create(ctx.images_dir + "/memfd.img",
                                                                     images::MemfdInode());
  if (!w.ok()) return w.status();
  uint32_t pages_id = static_cast<uint32_t>(ctx.tree.size());
  for (const auto& [ino, o] : objects) {
    if (o.memfd) {
      criu::memfd_inode_entry e;
      e.set_name(o.name);
      e.set_uid(o.uid);
      e.set_gid(o.gid);
      e.set_size(o.size);
      e.set_shmid(static_cast<uint32_t>(ino));
      e.set_seals(o.seals);
      e.set_inode_id(ino);
      e.set_mode(o.mode);
      if (auto s = w->Write(e); !s.ok()) return s;
    }
    uint64_t pages = 0;
    if (auto s = DumpContents(ctx, ino, o, ++pages_id, pages); !s.ok()) return s;
    if (ctx.stats != nullptr) ctx.stats->pages_written += pages;
    log::Info("shmem: %s %d: %d bytes, %d pages dumped", o.memfd ? "memfd " + o.name : "anonymous",
              ino, o.size, pages);
  }
  return w->Close();
}

// ---- restore ------------------------------------------------------------------

namespace {

// Fills `fd` (a fresh shared memory object) from pagemap-shmem-SHMID.img and
// its pages image; nothing to do when the object had no data.
absl::Status FillContents(const std::string& dir, uint64_t shmid, int fd) {
  std::string pagemap = absl::StrFormat("%s/pagemap-shmem-%d.img", dir, shmid);
  if (access(pagemap.c_str(), F_OK) != 0) return absl::OkStatus();
  auto r = images::ImageReader::Open(pagemap, &images::Pagemap());
  if (!r.ok()) return r.status();
  criu::pagemap_head head;
  auto more = (*r)->Next(head);
  if (!more.ok()) return more.status();
  if (!*more) return absl::DataLossError(pagemap + ": no pagemap head");
  std::string pages_path = absl::StrFormat("%s/pages-%d.img", dir, head.pages_id());
  int pages = open(pages_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (pages < 0) return Errno(pages_path);
  absl::Status status;
  std::vector<char> buf(1 << 20);
  off_t in = 0;
  for (;;) {
    criu::pagemap_entry pe;
    auto next = (*r)->Next(pe);
    if (!next.ok()) {
      status = next.status();
      break;
    }
    if (!*next) break;
    uint64_t bytes = (pe.has_nr_pages() ? pe.nr_pages() : pe.compat_nr_pages()) * kPage;
    for (uint64_t done = 0; done < bytes && status.ok();) {
      size_t want = std::min<uint64_t>(buf.size(), bytes - done);
      ssize_t n = pread(pages, buf.data(), want, in);
      if (n != static_cast<ssize_t>(want)) {
        status = absl::DataLossError(absl::StrFormat("%s: short at offset %d", pages_path, in));
        break;
      }
      if (pwrite(fd, buf.data(), want, static_cast<off_t>(pe.vaddr() + done)) !=
          static_cast<ssize_t>(want)) {
        status = Errno(absl::StrFormat("shared memory %d: writing its contents", shmid));
      }
      in += n;
      done += want;
    }
    if (!status.ok()) break;
  }
  close(pages);
  return status;
}

// Moves `fd` to the engine's range (fd_base and above) and returns the new number.
absl::StatusOr<int> High(int fd, int base, const std::string& what) {
  int high = fcntl(fd, F_DUPFD_CLOEXEC, base);
  int e = errno;
  close(fd);
  if (high < 0)
    return absl::InternalError(absl::StrFormat("%s: moving its fd: %s", what, strerror(e)));
  return high;
}

// Anonymous shared memory as the tree maps it: shmid -> size, from the VMAs
// of every task (the object is as large as its farthest mapping reaches).
absl::StatusOr<std::map<uint64_t, uint64_t>> AnonObjects(const std::string& dir) {
  auto tree = images::ReadAll<criu::pstree_entry>(dir + "/pstree.img", images::Pstree());
  if (!tree.ok()) return tree.status();
  std::map<uint64_t, uint64_t> sizes;
  for (const auto& e : *tree) {
    if (e.threads_size() == 0) continue;  // a zombie has no memory
    auto mm = images::ReadAll<criu::mm_entry>(absl::StrFormat("%s/mm-%d.img", dir, e.pid()),
                                              images::Mm());
    if (!mm.ok()) return mm.status();
    for (const auto& m : *mm) {
      for (const auto& v : m.vmas()) {
        if (!(v.status() & kVmaAnonShared)) continue;
        uint64_t& size = sizes[v.shmid()];
        size = std::max(size, v.pgoff() + (v.end() - v.start()));
      }
    }
  }
  return sizes;
}

}  // namespace

absl::Status Shmem::Restore(RestoreContext& ctx) {
  auto files = images::ReadAll<criu::file_entry>(ctx.images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  std::map<uint64_t, int> memfds;  // inode -> the memfd
  auto close_all = [&memfds] {
    for (const auto& [ino, fd] : memfds) close(fd);
  };
  std::string inodes_path = ctx.images_dir + "/memfd.img";
  if (access(inodes_path.c_str(), F_OK) == 0) {
    auto inodes = images::ReadAll<criu::memfd_inode_entry>(inodes_path, images::MemfdInode());
    if (!inodes.ok()) return inodes.status();
    for (const auto& in : *inodes) {
      int fd = memfd_create(in.name().c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
      absl::Status s;
      if (fd < 0) {
        s = Errno("memfd_create " + in.name());
      } else {
        memfds[in.inode_id()] = fd;
        // Contents come in whole pages: the size is set again after them.
        s = FillContents(ctx.images_dir, in.shmid(), fd);
        if (s.ok() && ftruncate(fd, static_cast<off_t>(in.size())) != 0) {
          s = Errno("memfd " + in.name());
        }
        // Seals last: they may forbid the writes above.
        if (s.ok() && in.seals() != 0 && fcntl(fd, F_ADD_SEALS, in.seals()) != 0) {
          s = Errno("memfd " + in.name() + ": sealing it");
        }
      }
      if (!s.ok()) {
        close_all();
        return s;
      }
      log::Info("shmem: memfd %s: %d bytes, seals %#x", in.name(), in.size(), in.seals());
    }
  }
  // Each open description of a memfd (and the entries its mappings use): a
  // description of its own on the same memfd.
  absl::Status status;
  for (const auto& f : *files) {
    if (f.type() != criu::MEMFD || !status.ok()) continue;
    auto it = f.has_memfd() ? memfds.find(f.memfd().inode_id()) : memfds.end();
    if (it == memfds.end()) {
      status = absl::DataLossError(
          absl::StrFormat("files.img: memfd entry %d refers to no memfd of memfd.img", f.id()));
      break;
    }
    const std::string self = absl::StrFormat("/proc/self/fd/%d", it->second);
    int fd = open(self.c_str(), (f.memfd().flags() & ~O_CREAT) | O_CLOEXEC);
    int for_maps = open(self.c_str(), O_RDWR | O_CLOEXEC);
    if (for_maps < 0) for_maps = open(self.c_str(), O_RDONLY | O_CLOEXEC);  // sealed
    if (fd < 0 || for_maps < 0 || lseek(fd, static_cast<off_t>(f.memfd().pos()), SEEK_SET) < 0) {
      status = Errno(absl::StrFormat("memfd entry %d", f.id()));
      if (fd >= 0) close(fd);
      if (for_maps >= 0) close(for_maps);
      break;
    }
    status = ctx.Inherit(f.id(), fd);
    auto high = High(for_maps, ctx.fd_base, absl::StrFormat("memfd entry %d", f.id()));
    if (!high.ok()) status = high.status();
    if (status.ok()) ctx.shared_memory[SharedMemoryKey(true, f.id())] = *high;
  }
  close_all();
  if (!status.ok()) return status;

  auto anon = AnonObjects(ctx.images_dir);
  if (!anon.ok()) return anon.status();
  for (const auto& [shmid, size] : *anon) {
    // A shared anonymous mapping of our own, known afterwards by an fd of
    // its object (what "/dev/zero (deleted)" in the maps is).
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return Errno(absl::StrFormat("shared memory %d: mmap", shmid));
    const uint64_t at = reinterpret_cast<uint64_t>(p);
    int fd = open(absl::StrFormat("/proc/self/map_files/%x-%x", at, at + size).c_str(),
                  O_RDWR | O_CLOEXEC);
    munmap(p, size);
    if (fd < 0) return Errno(absl::StrFormat("shared memory %d: /proc/self/map_files", shmid));
    if (auto s = FillContents(ctx.images_dir, shmid, fd); !s.ok()) {
      close(fd);
      return s;
    }
    auto high = High(fd, ctx.fd_base, absl::StrFormat("shared memory %d", shmid));
    if (!high.ok()) return high.status();
    ctx.shared_memory[SharedMemoryKey(false, shmid)] = *high;
    log::Info("shmem: anonymous shared memory %d: %d bytes", shmid, size);
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
