#include "core/context.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "core/parallel.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"

namespace crpp {

FileTable::FileTable() = default;
FileTable::~FileTable() = default;

absl::Status DumpContext::FinishOldestDeferred() {
  if (deferred.empty()) return absl::OkStatus();
  std::unique_ptr<Deferred> work = std::move(deferred.front());
  deferred.pop_front();
  return work->Finish();
}

absl::Status DumpContext::FinishAllDeferred() {
  while (!deferred.empty()) {
    if (absl::Status s = FinishOldestDeferred(); !s.ok()) {
      DropDeferred();
      return s;
    }
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<std::vector<DumpContext::OpenFd>> ReadOpenFds(pid_t task, bool with_info) {
  auto numbers = proc::ListFds(task);
  if (!numbers.ok()) return numbers.status();
  std::vector<DumpContext::OpenFd> fds;
  fds.reserve(numbers->size());
  for (int fd : *numbers) {
    DumpContext::OpenFd f;
    f.fd = fd;
    const std::string path = absl::StrFormat("/proc/%d/fd/%d", task, fd);
    char buf[4096];
    const ssize_t n = readlink(path.c_str(), buf, sizeof buf);
    if (n < 0 && errno == ENOENT) continue;  // closed meanwhile
    if (n < 0 || ::stat(path.c_str(), &f.st) != 0) {
      if (errno == ENOENT) continue;
      return absl::NotFoundError(absl::StrFormat("%s: %s", path, strerror(errno)));
    }
    f.link.assign(buf, static_cast<size_t>(n));
    if (with_info) {
      auto info = proc::ReadFdInfo(task, fd);
      if (!info.ok() && absl::IsNotFound(info.status())) continue;  // closed meanwhile
      if (!info.ok()) return info.status();
      f.info = std::make_shared<const proc::FdInfo>(*info);
    }
    fds.push_back(std::move(f));
  }
  return fds;
}

}  // namespace

absl::StatusOr<const std::vector<DumpContext::OpenFd>*> DumpContext::OpenFds(pid_t task) {
  if (open_fds == nullptr) open_fds = std::make_shared<std::map<pid_t, std::vector<OpenFd>>>();
  if (auto it = open_fds->find(task); it != open_fds->end()) return &it->second;
  auto fds = ReadOpenFds(task, /*with_info=*/false);
  if (!fds.ok()) return fds.status();
  return &open_fds->emplace(task, *std::move(fds)).first->second;
}

size_t DumpContext::ReadTreeFdsAhead(bool with_info) {
  std::vector<pid_t> owners;
  for (const TreeTask& t : tree) {
    if (t.owns_fd_table()) owners.push_back(t.pid);
  }
  std::vector<absl::StatusOr<std::vector<OpenFd>>> read(owners.size());
  ParallelFor(owners.size(), [&](size_t i) { read[i] = ReadOpenFds(owners[i], with_info); });
  if (open_fds == nullptr) open_fds = std::make_shared<std::map<pid_t, std::vector<OpenFd>>>();
  size_t count = 0;
  for (size_t i = 0; i < owners.size(); ++i) {
    // A failure is left for OpenFds to meet again, and report, when a
    // plugin asks.
    if (!read[i].ok()) continue;
    count += read[i]->size();
    open_fds->emplace(owners[i], *std::move(read[i]));
  }
  return count;
}

absl::StatusOr<proc::FdInfo> DumpContext::InfoOf(pid_t pid, const OpenFd& open) {
  if (open.info) return *open.info;
  return proc::ReadFdInfo(pid, open.fd);
}

bool TreeTask::zombie() const { return stat != nullptr && stat->state == 'Z'; }

absl::Status DumpContext::ForEachTreeFd(const TreeFdFn& fn) {
  for (const TreeTask& t : tree) {
    if (!t.owns_fd_table()) continue;
    auto fds = OpenFds(t.pid);
    if (!fds.ok()) return fds.status();
    for (const OpenFd& open : **fds) {
      if (absl::Status s = fn(t.pid, open); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

void DumpContext::ReadProcLocksAhead() {
  proc_locks = std::async(std::launch::async, [] { return proc::ReadFile("/proc/locks"); }).share();
}

absl::StatusOr<std::string> DumpContext::ProcLocks() const {
  if (!proc_locks.valid()) return absl::NotFoundError("/proc/locks was not read");
  return proc_locks.get();
}

bool TreeTask::owns_fd_table() const { return !zombie() && (files_id == 0 || files_id == id); }

uint32_t FileTable::Add(criu::file_entry entry) {
  uint32_t id = static_cast<uint32_t>(entries_.size()) + 1;
  entry.set_id(id);
  // The payload carries the id too (reg.id, pipe.id, ...), as CRIU writes it.
  if (entry.has_reg()) entry.mutable_reg()->set_id(id);
  if (entry.has_pipe()) entry.mutable_pipe()->set_id(id);
  if (entry.has_usk()) entry.mutable_usk()->set_id(id);
  if (entry.has_efd()) entry.mutable_efd()->set_id(id);
  if (entry.has_tfd()) entry.mutable_tfd()->set_id(id);
  if (entry.has_sgfd()) entry.mutable_sgfd()->set_id(id);
  if (entry.has_tty()) entry.mutable_tty()->set_id(id);
  if (entry.has_epfd()) {
    entry.mutable_epfd()->set_id(id);
    for (auto& t : *entry.mutable_epfd()->mutable_tfd()) t.set_id(id);  // the epoll's id
  }
  entries_.push_back(std::move(entry));
  return id;
}

void FileTable::AddSameId(uint32_t id, criu::file_entry entry) {
  entry.set_id(id);
  if (entry.has_reg()) entry.mutable_reg()->set_id(id);
  entries_.push_back(std::move(entry));
}

uint32_t FileTable::AddPath(const std::string& path, uint32_t flags) {
  auto key = std::make_pair(path, flags);
  if (auto it = by_path_.find(key); it != by_path_.end()) return it->second;
  criu::file_entry e;
  e.set_type(criu::REG);
  e.set_id(0);
  auto* reg = e.mutable_reg();
  reg->set_id(0);
  reg->set_flags(flags);
  reg->set_pos(0);
  reg->set_name(path);
  SetNoOwner(*reg->mutable_fown());
  uint32_t id = Add(std::move(e));
  by_path_[key] = id;
  return id;
}

uint32_t FileTable::FindDescription(pid_t pid, int fd, uint64_t dev, uint64_t ino) const {
  for (const Description& d : descriptions_) {
    if (d.dev == dev && d.ino == ino && syscall(SYS_kcmp, pid, d.pid, KCMP_FILE, fd, d.fd) == 0) {
      return d.id;
    }
  }
  return 0;
}

void FileTable::AddDescription(uint32_t id, pid_t pid, int fd, uint64_t dev, uint64_t ino) {
  descriptions_.push_back({id, pid, fd, dev, ino});
}

absl::Status RestoreContext::Inherit(uint32_t id, int fd) {
  int high = fcntl(fd, F_DUPFD_CLOEXEC, fd_base);
  int e = errno;
  close(fd);
  if (high < 0) {
    return absl::InternalError(
        absl::StrFormat("file id %d: moving its fd to %d or above: %s", id, fd_base, strerror(e)));
  }
  inherited[id] = high;
  return absl::OkStatus();
}

const std::vector<criu::file_entry>& FileTable::entries() const { return entries_; }

void SetNoOwner(criu::fown_entry& owner) {
  owner.set_uid(0);
  owner.set_euid(0);
  owner.set_signum(0);
  owner.set_pid_type(0);
  owner.set_pid(0);
}

}  // namespace crpp
