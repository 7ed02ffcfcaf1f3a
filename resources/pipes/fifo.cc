#include "resources/pipes/fifo.h"

#include <fcntl.h>
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
#include "resources/pipes/pipes_internal.h"

namespace crpp::resources {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrFormat("%s: %s", what, strerror(errno)));
}

// Adds the two files.img entries of one open description of a FIFO: the
// regular-file entry of its path (how to open it) and the FIFO entry that
// refers to it. Returns the FIFO entry's id.
uint32_t AddEntries(DumpContext& ctx, const std::string& path, const struct stat& st,
                    uint32_t flags) {
  criu::file_entry r;
  r.set_type(criu::REG);
  r.set_id(0);
  auto* reg = r.mutable_reg();
  reg->set_id(0);
  reg->set_flags(flags);
  reg->set_pos(0);
  SetNoOwner(*reg->mutable_fown());
  reg->set_name(path);
  reg->set_mode(st.st_mode);
  uint32_t regf_id = ctx.files->Add(std::move(r));
  criu::file_entry f;
  f.set_type(criu::FIFO);
  f.set_id(0);
  auto* fifo = f.mutable_fifo();
  fifo->set_id(0);
  fifo->set_pipe_id(static_cast<uint32_t>(st.st_ino));
  fifo->set_regf_id(regf_id);
  return ctx.files->Add(std::move(f));
}

}  // namespace

absl::Status Fifos::Dump(DumpContext& ctx) {
  auto data_image =
      images::ImageWriter::Create(ctx.images_dir + "/fifo-data.img", images::FifoData());
  if (!data_image.ok()) return data_image.status();
  std::set<uint64_t> dumped;  // FIFO inodes whose buffer is in fifo-data.img
  absl::Status walked =
      ctx.ForEachTreeFd([&](pid_t pid, const DumpContext::OpenFd& open) -> absl::Status {
        const int fd = open.fd;
        const struct stat& st = open.st;
        if (!S_ISFIFO(st.st_mode)) return absl::OkStatus();
        const std::string* path = &open.link;
        // An anonymous pipe is the pipes plugin's.
        if (path->rfind("pipe:[", 0) == 0) return absl::OkStatus();
        if (path->empty() || (*path)[0] != '/' || path->ends_with(" (deleted)")) {
          return absl::UnimplementedError(absl::StrFormat(
              "pid %d fd %d is a FIFO without a path to open it again (%s): not supported", pid, fd,
              *path));
        }
        uint32_t id = ctx.files->FindDescription(pid, fd, st.st_dev, st.st_ino);
        if (id == 0) {
          auto info = DumpContext::InfoOf(pid, open);
          if (!info.ok()) return info.status();
          id = AddEntries(ctx, *path, st, info->flags & ~O_CLOEXEC);
          ctx.files->AddDescription(id, pid, fd, st.st_dev, st.st_ino);
        }
        ctx.fd_ids[{pid, fd}] = {id, criu::FIFO};
        if (!dumped.insert(st.st_ino).second) return absl::OkStatus();
        auto b =
            pipes_internal::DumpBuffer(**data_image, pid, fd, static_cast<uint32_t>(st.st_ino));
        if (!b.ok()) return b.status();
        log::Info("fifos: %s (size %d) holds %d bytes", *path, b->size, b->bytes);
        return absl::OkStatus();
      });
  if (!walked.ok()) return walked;
  return (*data_image)->Close();
}

absl::Status Fifos::Restore(RestoreContext& ctx) {
  auto files = images::ReadAll<criu::file_entry>(ctx.images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  std::map<uint32_t, const criu::reg_file_entry*> regs;
  for (const auto& f : *files) {
    if (f.type() == criu::REG && f.has_reg()) regs[f.id()] = &f.reg();
  }
  // Descriptions by FIFO (pipe id), each with the entry that says how to open it.
  struct Description {
    uint32_t id;
    const criu::reg_file_entry* reg;
  };
  std::map<uint32_t, std::vector<Description>> by_fifo;
  for (const auto& f : *files) {
    if (f.type() != criu::FIFO) continue;
    auto reg = f.has_fifo() ? regs.find(f.fifo().regf_id()) : regs.end();
    if (reg == regs.end()) {
      return absl::DataLossError(absl::StrFormat(
          "files.img: FIFO entry %d has no regular-file entry for its path", f.id()));
    }
    by_fifo[f.fifo().pipe_id()].push_back({f.id(), reg->second});
  }
  if (by_fifo.empty()) return absl::OkStatus();
  auto data = pipes_internal::ReadPipeData(ctx.images_dir + "/fifo-data.img", images::FifoData());
  if (!data.ok()) return data.status();
  for (const auto& [pipe_id, descriptions] : by_fifo) {
    const std::string& path = descriptions.front().reg->name();
    // Ours, read-write: no open below blocks or fails for want of the other
    // end, and the refilled bytes have a holder until the tasks hold them.
    int keeper = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (keeper < 0) return Errno(absl::StrFormat("FIFO %s", path));
    struct stat st;
    absl::Status status;
    if (fstat(keeper, &st) != 0 || !S_ISFIFO(st.st_mode)) {
      status = absl::FailedPreconditionError(absl::StrFormat(
          "%s is no longer a FIFO: cannot restore the FIFO the tree had open", path));
    }
    if (auto d = data->find(pipe_id); status.ok() && d != data->end()) {
      status = pipes_internal::Refill(keeper, pipe_id, d->second);
    }
    for (const Description& d : descriptions) {
      if (!status.ok()) break;
      const uint32_t flags = d.reg->flags();
      int fd = open(path.c_str(), (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) {
        status = Errno(absl::StrFormat("FIFO %s (file id %d)", path, d.id));
        break;
      }
      if (fcntl(fd, F_SETFL, flags & (O_NONBLOCK | O_APPEND)) != 0) {
        status = Errno(absl::StrFormat("FIFO %s: flags of file id %d", path, d.id));
        close(fd);
        break;
      }
      status = ctx.Inherit(d.id, fd);
    }
    close(keeper);
    if (!status.ok()) return status;
    log::Info("fifos: %s: %d descriptions", path, descriptions.size());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
