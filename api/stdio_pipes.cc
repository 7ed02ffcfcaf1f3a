#include "api/stdio_pipes.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_format.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "fdinfo.pb.h"
#include "pstree.pb.h"
#include "resources/files/fds.h"

namespace crpp::api_internal {

StdioPipes::StdioPipes(StdioPipes&& other) noexcept
    : inherit(std::move(other.inherit)), caller(other.caller) {
  other.inherit.clear();
  other.caller = {-1, -1, -1};
}

StdioPipes& StdioPipes::operator=(StdioPipes&& other) noexcept {
  if (this != &other) {
    Close();
    inherit = std::move(other.inherit);
    caller = other.caller;
    other.inherit.clear();
    other.caller = {-1, -1, -1};
  }
  return *this;
}

StdioPipes::~StdioPipes() { Close(); }

void StdioPipes::Close() {
  CloseTaskEnds();
  std::set<int> closed;
  for (int fd : caller) {
    if (fd >= 0 && closed.insert(fd).second) close(fd);
  }
  caller = {-1, -1, -1};
}

void StdioPipes::CloseTaskEnds() {
  for (const InheritFd& in : inherit) close(in.fd);
  inherit.clear();
}

absl::StatusOr<StdioPipes> MakeStdioPipes(const std::string& dir) {
  auto tree = images::ReadAll<criu::pstree_entry>(dir + "/pstree.img", images::Pstree());
  if (!tree.ok()) return tree.status();
  if (tree->empty()) return absl::DataLossError(dir + "/pstree.img: no task");
  const uint32_t root = tree->front().pid();
  auto fds = resources::ReadTaskFdinfo(dir, static_cast<pid_t>(root));
  if (!fds.ok()) return fds.status();
  auto files = images::ReadAll<criu::file_entry>(dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();

  // Pipe ends the tree holds, by pipe inode: a pipe with both is the tree's own.
  std::map<uint32_t, std::set<uint32_t>> modes;
  std::map<uint32_t, const criu::pipe_entry*> pipe_of_file;
  for (const criu::file_entry& f : *files) {
    if (f.type() != criu::PIPE || !f.has_pipe()) continue;
    modes[f.pipe().pipe_id()].insert(f.pipe().flags() & O_ACCMODE);
    pipe_of_file[f.id()] = &f.pipe();
  }
  StdioPipes out;
  std::map<uint32_t, int> caller_end;  // by pipe inode
  for (const criu::fdinfo_entry& fe : *fds) {
    if (fe.fd() > 2 || fe.type() != criu::PIPE) continue;
    auto p = pipe_of_file.find(fe.id());
    if (p == pipe_of_file.end()) continue;
    const uint32_t ino = p->second->pipe_id();
    if (modes[ino].size() > 1) continue;  // both ends in the tree
    if (auto known = caller_end.find(ino); known != caller_end.end()) {
      out.caller[fe.fd()] = known->second;
      continue;
    }
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrFormat("pipe for fd %d: %s", fe.fd(), strerror(errno)));
    }
    // The task reads what was its read end; the caller holds the other.
    const bool task_reads = (p->second->flags() & O_ACCMODE) == O_RDONLY;
    const int task_end = task_reads ? ends[0] : ends[1];
    const int mine = task_reads ? ends[1] : ends[0];
    out.inherit.push_back({task_end, absl::StrFormat("pipe:[%d]", ino)});
    out.caller[fe.fd()] = mine;
    caller_end[ino] = mine;
  }
  return out;
}

}  // namespace crpp::api_internal
