#include "resources/pipes/pipes.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"
#include "pipe-data.pb.h"
#include "resources/common/descriptions.h"
#include "resources/pipes/pipes_internal.h"

namespace crpp::resources {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

// "pipe:[12345]" -> 12345; 0 if the link is not an anonymous pipe.
uint64_t PipeInode(const std::string& link) {
  if (link.rfind("pipe:[", 0) != 0 || link.back() != ']') return 0;
  return strtoull(link.c_str() + 6, nullptr, 10);
}

// The bytes buffered in the pipe that `pid`'s `fd` is an end of, left where
// they are: a read end of our own (through /proc, which works for either end)
// and tee(2) into a pipe of ours as big as that one. `size` gets the pipe's
// capacity.
absl::StatusOr<std::string> PeekPipe(pid_t pid, int fd, uint32_t& size) {
  struct Fds {  // closed whatever happens
    int src = -1, copy[2] = {-1, -1};
    ~Fds() {
      for (int f : {src, copy[0], copy[1]}) {
        if (f >= 0) close(f);
      }
    }
  } f;
  const std::string what = absl::StrFormat("pid %d fd %d", pid, fd);
  f.src =
      open(absl::StrFormat("/proc/%d/fd/%d", pid, fd).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (f.src < 0) return Errno(what + ": opening the pipe");
  int capacity = fcntl(f.src, F_GETPIPE_SZ);
  int avail = 0;
  if (capacity < 0 || ioctl(f.src, FIONREAD, &avail) != 0) return Errno(what + ": pipe size");
  size = static_cast<uint32_t>(capacity);
  std::string data;
  if (avail == 0) return data;
  if (pipe2(f.copy, O_CLOEXEC | O_NONBLOCK) != 0 || fcntl(f.copy[1], F_SETPIPE_SZ, capacity) < 0) {
    return Errno(what + ": a pipe for the copy");
  }
  ssize_t n = tee(f.src, f.copy[1], static_cast<size_t>(avail), SPLICE_F_NONBLOCK);
  if (n != avail) {
    return absl::InternalError(absl::StrFormat("%s: copied %d of the %d bytes in the pipe (%s)",
                                               what, n, avail,
                                               n < 0 ? strerror(errno) : "short tee"));
  }
  data.resize(static_cast<size_t>(avail));
  for (size_t got = 0; got < data.size();) {
    ssize_t r = read(f.copy[0], data.data() + got, data.size() - got);
    if (r <= 0) return Errno(what + ": reading the copy");
    got += static_cast<size_t>(r);
  }
  return data;
}

}  // namespace

namespace pipes_internal {

absl::StatusOr<Buffered> DumpBuffer(images::ImageWriter& image, pid_t pid, int fd,
                                    uint32_t pipe_id) {
  Buffered b;
  auto bytes = PeekPipe(pid, fd, b.size);
  if (!bytes.ok()) return bytes.status();
  criu::pipe_data_entry pd;
  pd.set_pipe_id(pipe_id);
  pd.set_bytes(static_cast<uint32_t>(bytes->size()));
  pd.set_size(b.size);
  if (auto s = image.Write(pd); !s.ok()) return s;
  if (auto s = image.WritePayload(*bytes); !s.ok()) return s;
  b.bytes = bytes->size();
  return b;
}

}  // namespace pipes_internal

absl::Status Pipes::Dump(DumpContext& ctx) {
  // Written even when empty, as CRIU does: a tree without pipes has an
  // image without entries.
  auto data_image =
      images::ImageWriter::Create(ctx.images_dir + "/pipes-data.img", images::PipesData());
  if (!data_image.ok()) return data_image.status();
  std::set<uint64_t> dumped;  // pipe inodes whose buffer is in pipes-data.img
  // Every end held in the tree, one entry per open description; a pipe's
  // buffer once, with the first description of it seen.
  absl::Status walked = descriptions::ForEachDescription(
      ctx, [](std::string_view link) { return PipeInode(std::string(link)) != 0; }, criu::PIPE,
      [&](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        const uint64_t ino = PipeInode(f.link);
        auto* p = e.mutable_pipe();
        p->set_id(0);
        p->set_pipe_id(static_cast<uint32_t>(ino));
        p->set_flags(f.flags);
        SetNoOwner(*p->mutable_fown());
        if (!dumped.insert(ino).second) return absl::OkStatus();
        auto b = pipes_internal::DumpBuffer(**data_image, f.pid, f.fd, static_cast<uint32_t>(ino));
        if (!b.ok()) return b.status();
        log::Info("pipes: pipe %d (size %d) holds %d bytes", ino, b->size, b->bytes);
        return absl::OkStatus();
      });
  if (!walked.ok()) return walked;
  return (*data_image)->Close();
}

// ---- restore ------------------------------------------------------------------

namespace pipes_internal {

absl::StatusOr<std::map<uint32_t, PipeData>> ReadPipeData(const std::string& path,
                                                          const images::ImageKind& kind) {
  std::map<uint32_t, PipeData> out;
  if (access(path.c_str(), F_OK) != 0) return out;  // no pipe held data
  auto r = images::ImageReader::Open(path, &kind);
  if (!r.ok()) return r.status();
  criu::pipe_data_entry pd;
  for (;;) {
    auto more = (*r)->Next(pd);
    if (!more.ok()) return more.status();
    if (!*more) break;
    PipeData& d = out[pd.pipe_id()];
    d.size = pd.size();
    if (auto s = (*r)->ReadPayload(pd.bytes(), d.bytes); !s.ok()) return s;
  }
  return out;
}

absl::Status Refill(int fd, uint32_t id, const PipeData& d) {
  if (d.size != 0 && fcntl(fd, F_SETPIPE_SZ, d.size) < 0) {
    return Errno(absl::StrFormat("pipe %d: setting its size to %d", id, d.size));
  }
  for (size_t off = 0; off < d.bytes.size();) {
    ssize_t n = write(fd, d.bytes.data() + off, d.bytes.size() - off);
    if (n <= 0) return Errno(absl::StrFormat("pipe %d: refilling it", id));
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace pipes_internal

namespace {

// Every description of pipe `pipe_id` the tree held is the caller's `fd`
// (--inherit-fd): the tree may hold only the end the caller gives (the other
// end is the caller's), and the buffered data is the caller's business.
absl::Status InheritPipe(RestoreContext& ctx, uint32_t pipe_id,
                         const std::vector<const criu::pipe_entry*>& ends, int fd) {
  const int mode = fcntl(fd, F_GETFL) & O_ACCMODE;
  for (const criu::pipe_entry* e : ends) {
    if (static_cast<int>(e->flags() & O_ACCMODE) != mode) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--inherit-fd pipe:[%d]: the tree held the %s end, the given fd is the other one",
          pipe_id, (e->flags() & O_ACCMODE) == O_RDONLY ? "read" : "write"));
    }
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return Errno(absl::StrFormat("pipe %d: the inherited fd", pipe_id));
    if (auto s = ctx.Inherit(e->id(), copy); !s.ok()) return s;
  }
  log::Info("pipes: pipe %d is the caller's (--inherit-fd), %d descriptions", pipe_id, ends.size());
  return absl::OkStatus();
}

}  // namespace

using pipes_internal::PipeData;
using pipes_internal::ReadPipeData;
using pipes_internal::Refill;

absl::Status Pipes::Restore(RestoreContext& ctx) {
  auto files = images::ReadAll<criu::file_entry>(ctx.images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  std::map<uint32_t, std::vector<const criu::pipe_entry*>> by_pipe;
  for (const auto& f : *files) {
    if (f.type() != criu::PIPE) continue;
    if (!f.has_pipe()) {
      return absl::DataLossError(absl::StrFormat("files.img: pipe entry %d has no pipe", f.id()));
    }
    by_pipe[f.pipe().pipe_id()].push_back(&f.pipe());
  }
  if (by_pipe.empty()) return absl::OkStatus();
  auto data = ReadPipeData(ctx.images_dir + "/pipes-data.img", images::PipesData());
  if (!data.ok()) return data.status();
  for (const auto& [pipe_id, ends] : by_pipe) {
    // --inherit-fd pipe:[ID]: the caller's end of that pipe stands for it.
    if (auto in = ctx.inherit_fds.find(absl::StrFormat("pipe:[%d]", pipe_id));
        in != ctx.inherit_fds.end()) {
      if (auto s = InheritPipe(ctx, pipe_id, ends, in->second); !s.ok()) return s;
      continue;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return Errno(absl::StrFormat("pipe %d: pipe2", pipe_id));
    auto d = data->find(pipe_id);
    absl::Status status;
    if (d != data->end()) status = Refill(p[1], pipe_id, d->second);
    // Each description of an end: the pipe's own for the first (handed over
    // as it is), a reopened one (as /proc/self/fd/N gives) for any other.
    bool used[2] = {false, false};
    for (const criu::pipe_entry* e : ends) {
      if (!status.ok()) break;
      int end = (e->flags() & O_ACCMODE) == O_RDONLY ? 0 : 1;
      int fd = p[end];
      if (used[end]) {
        fd = open(absl::StrFormat("/proc/self/fd/%d", p[end]).c_str(),
                  (end == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
        if (fd < 0) {
          status = Errno(absl::StrFormat("pipe %d: end for file id %d", pipe_id, e->id()));
          break;
        }
      }
      if (fcntl(fd, F_SETFL, e->flags() & O_NONBLOCK) != 0) {
        status = Errno(absl::StrFormat("pipe %d: flags of file id %d", pipe_id, e->id()));
      }
      if (status.ok()) {
        used[end] = true;
        status = ctx.Inherit(e->id(), fd);  // closes fd (p[end] too, the first time)
      } else if (used[end]) {
        close(fd);
      }
    }
    for (int end : {0, 1}) {
      if (!used[end]) close(p[end]);
    }
    if (!status.ok()) return status;
    log::Info("pipes: pipe %d: %d descriptions, %d bytes refilled", pipe_id, ends.size(),
              d == data->end() ? 0 : d->second.bytes.size());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
