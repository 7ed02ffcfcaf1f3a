#include "resources/events/eventpoll.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "resources/common/descriptions.h"

namespace crpp::resources {
namespace {

constexpr std::string_view kLink = "anon_inode:[eventpoll]";

// One "tfd:" line: "N events: X data: Y  pos:P ino:I sdev:D" (hex but N, P).
absl::StatusOr<criu::eventpoll_tfd_entry> ParseTarget(const std::string& line,
                                                      const std::string& where) {
  unsigned tfd = 0, events = 0, sdev = 0;
  unsigned long long data = 0, pos = 0, ino = 0;
  int n = sscanf(line.c_str(), "%u events: %x data: %llx pos:%llu ino:%llx sdev:%x", &tfd, &events,
                 &data, &pos, &ino, &sdev);
  if (n < 3) {
    return absl::DataLossError(
        absl::StrFormat("%s: cannot parse the epoll target \"%s\"", where, line));
  }
  criu::eventpoll_tfd_entry t;
  t.set_id(0);
  t.set_tfd(tfd);
  t.set_events(events);
  t.set_data(data);
  if (n == 6) {
    t.set_dev(sdev);
    t.set_inode(ino);
    t.set_pos(pos);
  }
  return t;
}

// True if `pid`'s fd FD is the file the epoll item SLOT names.
bool SameFile(pid_t pid, int fd, const kcmp_epoll_slot& slot) {
  return syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, fd, reinterpret_cast<unsigned long>(&slot)) ==
         0;
}

// The number under which `pid` holds the file the item SLOT watches: its own
// number if that fd still is the file, else another fd of the same file
// (the one it was registered under was closed), else -1.
absl::StatusOr<int> TargetNumber(pid_t pid, const kcmp_epoll_slot& slot) {
  if (SameFile(pid, static_cast<int>(slot.tfd), slot)) return static_cast<int>(slot.tfd);
  auto fds = proc::ListFds(pid);
  if (!fds.ok()) return fds.status();
  for (int fd : *fds) {
    if (SameFile(pid, fd, slot)) return fd;
  }
  return -1;
}

// The targets of the epoll F, checked and appended to EP (and what changes
// logged when DUMPING).
absl::Status Targets(const descriptions::Found& f, criu::eventpoll_file_entry& ep, bool dumping) {
  // f is the first fd of the epoll in tree order: its task owns it.
  const std::string where = descriptions::Where(f.pid, f.fd);
  std::map<uint32_t, uint32_t> seen;  // fd number -> items with it so far
  std::set<int> numbers;              // the numbers written
  for (const auto& [key, value] : f.info.lines) {
    if (key != "tfd") continue;
    auto t = ParseTarget(value, where);
    if (!t.ok()) return t.status();
    // Items registered under one number (closed and reused in between) are
    // told apart by their rank among the items of that number.
    const kcmp_epoll_slot slot = {static_cast<uint32_t>(f.fd), t->tfd(), seen[t->tfd()]++};
    auto number = TargetNumber(f.pid, slot);
    if (!number.ok()) return number.status();
    if (*number < 0) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is an epoll watching a file registered as fd %d, which pid %d holds under no fd "
          "(it was closed, and only another process holds the file, or another process "
          "sharing the epoll added it): not supported",
          where, t->tfd(), f.pid));
    }
    if (!numbers.insert(*number).second) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is an epoll watching the file of fd %d twice, once under a number closed since: "
          "not supported",
          where, *number));
    }
    if (*number != static_cast<int>(t->tfd()) && dumping) {
      log::Warn(
          "eventpoll: %s: the file it watches as fd %d (closed since) is fd %d now: "
          "it is watched as fd %d after restore",
          where, t->tfd(), *number, *number);
    }
    t->set_tfd(static_cast<uint32_t>(*number));
    *ep.add_tfd() = std::move(*t);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EventPoll::Precheck(DumpContext& ctx) {
  // The same walk on a table of its own: nothing is recorded.
  FileTable scratch;
  DumpContext probe = ctx.Probe(&scratch);
  return descriptions::ForEachDescription(probe, kLink, criu::EVENTPOLL,
                                          [](const descriptions::Found& f, criu::file_entry& e) {
                                            return Targets(f, *e.mutable_epfd(), false);
                                          });
}

absl::Status EventPoll::Dump(DumpContext& ctx) {
  return descriptions::ForEachDescription(
      ctx, kLink, criu::EVENTPOLL,
      [](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        auto* ep = e.mutable_epfd();
        ep->set_id(0);
        ep->set_flags(f.flags);
        SetNoOwner(*ep->mutable_fown());
        if (auto s = Targets(f, *ep, true); !s.ok()) return s;
        log::Info("eventpoll: %s: %d targets, flags %#o", descriptions::Where(f.pid, f.fd),
                  ep->tfd_size(), f.flags);
        return absl::OkStatus();
      });
}

absl::Status EventPoll::Restore(RestoreContext& ctx) {
  auto entries = descriptions::ReadEntries(ctx.images_dir, criu::EVENTPOLL);
  if (!entries.ok()) return entries.status();
  for (const criu::file_entry& f : *entries) {
    const std::string what = absl::StrFormat("epoll (file id %d)", f.id());
    if (!f.has_epfd()) return absl::DataLossError("files.img: " + what + " has no epfd");
    // Empty for now: its owner adds the targets (EventPollTargets).
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) return descriptions::Errno(what + ": epoll_create1");
    if (fcntl(epoll, F_SETFL, f.epfd().flags() & O_NONBLOCK) != 0) {
      absl::Status s = descriptions::Errno(what + ": its flags");
      close(epoll);
      return s;
    }
    if (auto s = ctx.Inherit(f.id(), epoll); !s.ok()) return s;
    log::Debug("eventpoll: file id %d made (%d targets to come)", f.id(), f.epfd().tfd_size());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
