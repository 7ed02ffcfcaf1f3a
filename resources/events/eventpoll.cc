#include "resources/events/eventpoll.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "pstree.pb.h"
#include "resources/common/descriptions.h"

namespace crpp::resources {
namespace {

constexpr std::string_view kLink = "anon_inode:[eventpoll]";

// Kinds whose descriptions exist in the root before the epolls are made.
bool Watchable(int type) {
  return type == criu::PIPE || type == criu::EVENTFD || type == criu::TIMERFD ||
         type == criu::SIGNALFD;
}
bool WatchableLink(std::string_view link) {
  return link.starts_with("pipe:[") || link == "anon_inode:[eventfd]" ||
         link == "anon_inode:[timerfd]" || link == "anon_inode:[signalfd]";
}

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

// The targets of the epoll F, checked and appended to EP. FD_IDS (null at
// precheck) has the descriptions the other plugins dumped.
absl::Status Targets(const descriptions::Found& f,
                     const std::map<std::pair<pid_t, int>, DumpContext::FdRef>* fd_ids,
                     criu::eventpoll_file_entry& ep) {
  // f is the first fd of the epoll in tree order: its task owns it.
  const std::string where = descriptions::Where(f.pid, f.fd);
  std::set<uint32_t> seen;
  for (const auto& [key, value] : f.info.lines) {
    if (key != "tfd") continue;
    auto t = ParseTarget(value, where);
    if (!t.ok()) return t.status();
    const int tfd = static_cast<int>(t->tfd());
    if (!seen.insert(t->tfd()).second) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is an epoll watching two files both registered as fd %d: not supported", where, tfd));
    }
    kcmp_epoll_slot slot = {static_cast<uint32_t>(f.fd), t->tfd(), 0};
    long same = syscall(SYS_kcmp, f.pid, f.pid, KCMP_EPOLL_TFD, tfd,
                        reinterpret_cast<unsigned long>(&slot));
    if (same != 0) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is an epoll watching a file registered as fd %d, which is not that file in pid %d "
          "(it was closed, or the epoll is shared and another process added it): not supported",
          where, tfd, f.pid));
    }
    auto link = proc::ReadLink(absl::StrFormat("/proc/%d/fd/%d", f.pid, tfd));
    if (!link.ok()) return link.status();
    bool watchable = WatchableLink(*link);
    if (fd_ids != nullptr) {
      auto ref = fd_ids->find({f.pid, tfd});
      watchable = watchable && ref != fd_ids->end() && Watchable(ref->second.type);
    }
    if (!watchable) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is an epoll watching fd %d (%s): only pipes, eventfds, timerfds and signalfds can "
          "be watched for now",
          where, tfd, *link));
    }
    *ep.add_tfd() = std::move(*t);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EventPoll::Precheck(DumpContext& ctx) {
  // The same walk on a table of its own: nothing is recorded.
  FileTable scratch;
  DumpContext probe;
  probe.tree = ctx.tree;
  probe.files = &scratch;
  return descriptions::ForEachDescription(probe, kLink, criu::EVENTPOLL,
                                          [](const descriptions::Found& f, criu::file_entry& e) {
                                            return Targets(f, nullptr, *e.mutable_epfd());
                                          });
}

absl::Status EventPoll::Dump(DumpContext& ctx) {
  return descriptions::ForEachDescription(
      ctx, kLink, criu::EVENTPOLL,
      [&ctx](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        auto* ep = e.mutable_epfd();
        ep->set_id(0);
        ep->set_flags(f.flags);
        SetNoOwner(*ep->mutable_fown());
        if (auto s = Targets(f, &ctx.fd_ids, *ep); !s.ok()) return s;
        log::Info("eventpoll: %s: %d targets, flags %#o", descriptions::Where(f.pid, f.fd),
                  ep->tfd_size(), f.flags);
        return absl::OkStatus();
      });
}

// ---- restore ------------------------------------------------------------------

namespace {

// fd number -> file id in the first live process (pstree order) holding each
// epoll: the one whose fd numbers name its targets.
absl::StatusOr<std::map<uint32_t, std::map<uint32_t, uint32_t>>> Owners(
    const std::string& dir, const std::set<uint32_t>& epolls) {
  auto tree = images::ReadAll<criu::pstree_entry>(dir + "/pstree.img", images::Pstree());
  if (!tree.ok()) return tree.status();
  std::map<uint32_t, std::map<uint32_t, uint32_t>> out;
  for (const auto& t : *tree) {
    if (t.threads_size() == 0 || out.size() == epolls.size()) continue;  // a zombie
    auto ids = images::ReadAll<criu::task_kobj_ids_entry>(
        absl::StrFormat("%s/ids-%d.img", dir, t.pid()), images::Ids());
    if (!ids.ok()) return ids.status();
    if (ids->size() != 1) {
      return absl::DataLossError(absl::StrFormat("ids-%d.img: expected one entry", t.pid()));
    }
    auto fds = images::ReadAll<criu::fdinfo_entry>(
        absl::StrFormat("%s/fdinfo-%d.img", dir, ids->front().files_id()), images::Fdinfo());
    if (!fds.ok()) return fds.status();
    std::map<uint32_t, uint32_t> table;
    for (const auto& fe : *fds) table[fe.fd()] = fe.id();
    for (const auto& fe : *fds) {
      if (epolls.count(fe.id()) && !out.count(fe.id())) out[fe.id()] = table;
    }
  }
  return out;
}

absl::Status Add(int epoll, int number, epoll_event ev) {
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, number, &ev) != 0) {
    return descriptions::Errno(
        absl::StrFormat("EPOLL_CTL_ADD of fd %d (events %#x)", number, ev.events));
  }
  return absl::OkStatus();
}

// Adds the description held at `held` to `epoll` as fd `number`: it is put at
// that number for the call (what was there is put back after, fd flags too).
absl::Status AddAs(int epoll, int held, int number, epoll_event ev, int fd_base) {
  if (held == number) return Add(epoll, number, ev);
  int saved = -1;
  int saved_flags = fcntl(number, F_GETFD);
  if (saved_flags >= 0) {
    saved = fcntl(number, F_DUPFD_CLOEXEC, fd_base);
    if (saved < 0) return descriptions::Errno(absl::StrFormat("setting fd %d aside", number));
  }
  absl::Status s;
  if (dup3(held, number, O_CLOEXEC) < 0) {
    s = descriptions::Errno(absl::StrFormat("putting the target at fd %d", number));
  } else {
    s = Add(epoll, number, ev);
  }
  if (saved >= 0) {
    if ((dup3(saved, number, 0) < 0 || fcntl(number, F_SETFD, saved_flags) != 0) && s.ok()) {
      s = descriptions::Errno(absl::StrFormat("putting fd %d back", number));
    }
    close(saved);
  } else {
    close(number);
  }
  return s;
}

}  // namespace

absl::Status EventPoll::Restore(RestoreContext& ctx) {
  auto entries = descriptions::ReadEntries(ctx.images_dir, criu::EVENTPOLL);
  if (!entries.ok()) return entries.status();
  if (entries->empty()) return absl::OkStatus();
  std::set<uint32_t> ids;
  for (const auto& f : *entries) ids.insert(f.id());
  auto owners = Owners(ctx.images_dir, ids);
  if (!owners.ok()) return owners.status();
  for (const criu::file_entry& f : *entries) {
    const std::string what = absl::StrFormat("epoll (file id %d)", f.id());
    if (!f.has_epfd()) return absl::DataLossError("files.img: " + what + " has no epfd");
    auto owner = owners->find(f.id());
    if (owner == owners->end()) {
      return absl::DataLossError(what + ": no process of pstree.img holds it");
    }
    // Above the numbers the targets borrow (Inherit would move it there anyway).
    int created = epoll_create1(EPOLL_CLOEXEC);
    if (created < 0) return descriptions::Errno(what + ": epoll_create1");
    int epoll = fcntl(created, F_DUPFD_CLOEXEC, ctx.fd_base);
    close(created);
    if (epoll < 0) return descriptions::Errno(what + ": moving it up");
    absl::Status s;
    if (fcntl(epoll, F_SETFL, f.epfd().flags() & O_NONBLOCK) != 0) {
      s = descriptions::Errno(what + ": its flags");
    }
    for (const criu::eventpoll_tfd_entry& t : f.epfd().tfd()) {
      if (!s.ok()) break;
      auto target = owner->second.find(t.tfd());
      auto held =
          target == owner->second.end() ? ctx.inherited.end() : ctx.inherited.find(target->second);
      if (held == ctx.inherited.end()) {
        s = absl::DataLossError(absl::StrFormat(
            "%s: its target fd %d is not a pipe, eventfd, timerfd or signalfd of its owner", what,
            t.tfd()));
        break;
      }
      if (static_cast<int>(t.tfd()) >= ctx.fd_base) {
        s = absl::UnimplementedError(absl::StrFormat(
            "%s: its target fd %d is in the restore engine's range (raise RLIMIT_NOFILE for criu "
            "restore)",
            what, t.tfd()));
        break;
      }
      epoll_event ev = {};
      ev.events = t.events();
      ev.data.u64 = t.data();
      s = AddAs(epoll, held->second, static_cast<int>(t.tfd()), ev, ctx.fd_base);
      if (!s.ok()) s = absl::Status(s.code(), what + ": " + std::string(s.message()));
    }
    if (!s.ok()) {
      close(epoll);
      return s;
    }
    if (auto st = ctx.Inherit(f.id(), epoll); !st.ok()) return st;
    log::Debug("eventpoll: file id %d: %d targets", f.id(), f.epfd().tfd_size());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
