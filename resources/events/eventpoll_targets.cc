// EventPollTargets: the second step of an epoll's restore (eventpoll.h).
#include <sys/epoll.h>

#include <cerrno>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "pstree.pb.h"
#include "resources/common/descriptions.h"
#include "resources/events/eventpoll.h"

namespace crpp::resources {
namespace {

// The epolls this task must fill, and its fd table (fd number -> file id).
struct Owned {
  std::vector<uint32_t> ids;
  std::map<uint32_t, uint32_t> table;
};

// An epoll is its owner's to fill: the first live process of pstree.img
// holding it, whose fd numbers name its targets (as at dump).
absl::StatusOr<Owned> OwnedBy(const std::string& dir, pid_t pid,
                              const std::map<uint32_t, const criu::file_entry*>& epolls) {
  auto tree = images::ReadAll<criu::pstree_entry>(dir + "/pstree.img", images::Pstree());
  if (!tree.ok()) return tree.status();
  std::set<uint32_t> earlier;  // epolls a process before this one holds
  for (const auto& t : *tree) {
    if (t.threads_size() == 0) continue;  // a zombie holds no fds
    auto fds = ReadTaskFdinfo(dir, static_cast<pid_t>(t.pid()));
    if (!fds.ok()) return fds.status();
    if (static_cast<pid_t>(t.pid()) != pid) {
      for (const auto& fe : *fds) earlier.insert(fe.id());
      continue;
    }
    Owned out;
    std::set<uint32_t> added;
    for (const auto& fe : *fds) {
      out.table[fe.fd()] = fe.id();
      if (epolls.count(fe.id()) && !earlier.count(fe.id()) && added.insert(fe.id()).second) {
        out.ids.push_back(fe.id());
      }
    }
    return out;
  }
  return absl::DataLossError(absl::StrFormat("pstree.img has no live pid %d", pid));
}

// OWNED ordered so that an epoll another of them watches comes first: it is
// complete when the kernel checks the nesting of the one watching it.
absl::StatusOr<std::vector<uint32_t>> InnerFirst(
    const Owned& owned, const std::map<uint32_t, const criu::file_entry*>& epolls) {
  std::set<uint32_t> mine(owned.ids.begin(), owned.ids.end());
  std::map<uint32_t, int> state;  // 1: being visited, 2: done
  std::vector<uint32_t> order;
  std::function<absl::Status(uint32_t)> visit = [&](uint32_t id) -> absl::Status {
    if (state[id] == 2) return absl::OkStatus();
    if (state[id] == 1) {
      return absl::DataLossError(absl::StrFormat(
          "files.img: epolls watch each other in a cycle (file id %d): the kernel allows none",
          id));
    }
    state[id] = 1;
    for (const auto& t : epolls.at(id)->epfd().tfd()) {
      auto target = owned.table.find(t.tfd());
      if (target == owned.table.end() || !mine.count(target->second)) continue;
      if (auto s = visit(target->second); !s.ok()) return s;
    }
    state[id] = 2;
    order.push_back(id);
    return absl::OkStatus();
  };
  for (uint32_t id : owned.ids) {
    if (auto s = visit(id); !s.ok()) return s;
  }
  return order;
}

// The bits of an item's events that are no readiness: what is left of a
// one-shot item once it fired.
constexpr uint32_t kPrivateBits = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
constexpr uint32_t kAnyReadiness = EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND |
                                   EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP;

bool Disarmed(const criu::eventpoll_tfd_entry& t) {
  return (t.events() & EPOLLONESHOT) && (t.events() & ~kPrivateBits) == 0;
}

absl::Status Ctl(int efd, int op, const criu::eventpoll_tfd_entry& t, uint32_t events,
                 const std::string& what) {
  epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = t.data();
  if (epoll_ctl(efd, op, static_cast<int>(t.tfd()), &ev) != 0) {
    return descriptions::Errno(absl::StrFormat("%s: EPOLL_CTL_%s of fd %d (events %#x)", what,
                                               op == EPOLL_CTL_ADD ? "ADD" : "MOD", t.tfd(),
                                               events));
  }
  return absl::OkStatus();
}

// A one-shot item that fired has no readiness bits left, but EPOLL_CTL_ADD
// and _MOD always add EPOLLERR | EPOLLHUP: the item is added armed for any
// readiness and made to fire into an epoll_wait of our own, while the epoll
// holds no other item that could report. A target ready in no way cannot
// fire: its item stays armed for EPOLLERR | EPOLLHUP alone.
absl::Status AddDisarmed(int efd, const criu::eventpoll_tfd_entry& t, const std::string& what) {
  if (auto s = Ctl(efd, EPOLL_CTL_ADD, t, t.events() | kAnyReadiness, what); !s.ok()) return s;
  epoll_event ev = {};
  int n;
  do {
    n = epoll_wait(efd, &ev, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n == 1) return absl::OkStatus();
  log::Warn(
      "eventpoll: %s: the one-shot watch of fd %d fired before the dump, but its target is "
      "not ready now: it comes back armed for EPOLLERR | EPOLLHUP",
      what, t.tfd());
  return Ctl(efd, EPOLL_CTL_MOD, t, t.events(), what);
}

// Adds the targets of EPOLL (at fd EFD of this task) under their numbers:
// the disarmed one-shot ones first (see AddDisarmed).
absl::Status Fill(const criu::file_entry& epoll, int efd, const Owned& owned, pid_t pid) {
  const std::string what =
      absl::StrFormat("pid %d fd %d (epoll, file id %d)", pid, efd, epoll.id());
  for (const criu::eventpoll_tfd_entry& t : epoll.epfd().tfd()) {
    if (!owned.table.count(t.tfd())) {
      return absl::DataLossError(
          absl::StrFormat("%s: its target fd %d is not among the process's fds", what, t.tfd()));
    }
  }
  for (const criu::eventpoll_tfd_entry& t : epoll.epfd().tfd()) {
    if (!Disarmed(t)) continue;
    if (auto s = AddDisarmed(efd, t, what); !s.ok()) return s;
  }
  for (const criu::eventpoll_tfd_entry& t : epoll.epfd().tfd()) {
    if (Disarmed(t)) continue;
    if (auto s = Ctl(efd, EPOLL_CTL_ADD, t, t.events(), what); !s.ok()) return s;
  }
  log::Debug("eventpoll: %s: %d targets added", what, epoll.epfd().tfd_size());
  return absl::OkStatus();
}

}  // namespace

absl::Status EventPollTargets::Restore(RestoreContext& ctx) {
  // The epolls of a table shared with the parent are its owner's to fill
  // (the owner comes first in pstree.img, so it owns them at dump too).
  if (ctx.shares_parent_files) return absl::OkStatus();
  auto entries = descriptions::ReadEntries(ctx.images_dir, criu::EVENTPOLL);
  if (!entries.ok()) return entries.status();
  if (entries->empty()) return absl::OkStatus();
  std::map<uint32_t, const criu::file_entry*> epolls;
  for (const auto& f : *entries) {
    if (!f.has_epfd()) {
      return absl::DataLossError(absl::StrFormat("files.img: epoll %d has no epfd", f.id()));
    }
    epolls[f.id()] = &f;
  }
  auto owned = OwnedBy(ctx.images_dir, ctx.pid, epolls);
  if (!owned.ok()) return owned.status();
  auto order = InnerFirst(*owned, epolls);
  if (!order.ok()) return order.status();
  for (uint32_t id : *order) {
    int efd = -1;
    for (const auto& [fd, file] : owned->table) {
      if (file == id) {
        efd = static_cast<int>(fd);
        break;
      }
    }
    if (auto s = Fill(*epolls.at(id), efd, *owned, ctx.pid); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
