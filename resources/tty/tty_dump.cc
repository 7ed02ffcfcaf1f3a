// Dump half of the tty plugin (tty.h): which ptys the tree holds, the checks
// that refuse what restore could not bring back, and the images.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"
#include "resources/common/descriptions.h"
#include "resources/tty/devices.h"
#include "resources/tty/pty_queue.h"
#include "resources/tty/tty.h"
#include "resources/tty/tty_internal.h"

namespace crpp::resources {
namespace {

using descriptions::Where;
using tty::OwnedFd;

// One fd of a task of the tree that is an end of a pty.
struct PtyFd {
  pid_t pid;
  int fd;
  std::string link;
  struct stat st;
  bool master;
  unsigned index;
};

struct Scan {
  std::vector<PtyFd> fds;
  std::set<unsigned> masters, slaves;  // indexes of the ends the tree holds
};

const TreeTask* FindTask(const DumpContext& ctx, pid_t pid) {
  for (const TreeTask& t : ctx.tree) {
    if (t.pid == pid) return &t;
  }
  return nullptr;
}

std::string PtsName(unsigned index) { return absl::StrFormat("/dev/pts/%d", index); }

absl::StatusOr<Scan> ScanTree(const DumpContext& ctx) {
  Scan scan;
  for (const TreeTask& t : ctx.tree) {
    if (t.zombie()) continue;
    auto fds = proc::ListFds(t.pid);
    if (!fds.ok()) return fds.status();
    for (int fd : *fds) {
      const std::string link_path = absl::StrFormat("/proc/%d/fd/%d", t.pid, fd);
      struct stat st;
      if (stat(link_path.c_str(), &st) != 0) {
        if (errno == ENOENT) continue;  // closed meanwhile (the tree may still run)
        return descriptions::Errno(Where(t.pid, fd) + ": stat");
      }
      if (!S_ISCHR(st.st_mode)) continue;
      bool master = tty::IsPtyMaster(st.st_rdev);
      if (!master && !tty::IsPtySlave(st.st_rdev)) continue;
      auto link = proc::ReadLink(link_path);
      if (!link.ok()) return link.status();
      unsigned index = 0;
      if (master) {
        auto info = descriptions::ReadFdInfoLines(t.pid, fd);
        if (!info.ok()) return info.status();
        auto n = info->Number("tty-index", 10, Where(t.pid, fd));
        if (!n.ok()) return n.status();
        index = static_cast<unsigned>(*n);
        scan.masters.insert(index);
      } else {
        index = tty::PtyIndex(st.st_rdev);
        scan.slaves.insert(index);
      }
      scan.fds.push_back({t.pid, fd, *link, st, master, index});
    }
  }
  return scan;
}

// The ends of the ptys and the controlling terminals of the tree: refuses
// what restore could not give back.
absl::Status CheckScan(const DumpContext& ctx, const Scan& scan) {
  struct stat devpts;
  bool have_devpts = stat("/dev/pts", &devpts) == 0;
  for (const PtyFd& p : scan.fds) {
    if (p.master && !scan.slaves.count(p.index)) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is the master of pty %d (%s), whose slave no task of the dumped tree holds: not "
          "supported",
          Where(p.pid, p.fd), p.index, PtsName(p.index)));
    }
    if (!p.master && !scan.masters.count(p.index)) {
      if (ctx.shell_job) continue;  // the fds plugin restores it on the caller's terminal
      return absl::UnimplementedError(absl::StrFormat(
          "%s is %s, a pty slave whose master is not in the dumped tree: dump with --shell-job "
          "to restore it on the caller's terminal",
          Where(p.pid, p.fd), p.link));
    }
    if (!p.master && have_devpts && p.st.st_dev != devpts.st_dev) {
      return absl::UnimplementedError(
          absl::StrFormat("%s is %s of another devpts instance than /dev/pts: not supported",
                          Where(p.pid, p.fd), p.link));
    }
  }
  for (const TreeTask& t : ctx.tree) {
    if (t.zombie()) continue;
    const dev_t ctty = t.stat->tty_nr;
    const TreeTask* leader = FindTask(ctx, t.stat->sid);
    bool ours = ctty != 0 && tty::IsPtySlave(ctty) && scan.masters.count(tty::PtyIndex(ctty));
    if (ours && (leader == nullptr || leader->zombie())) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d: its controlling terminal is pty %d of the dumped tree, but its session "
          "leader %d is not in the tree: not supported",
          t.pid, tty::PtyIndex(ctty), t.stat->sid));
    }
    if (leader == nullptr) continue;  // a shell job: the session is the caller's
    if (t.pid == t.stat->sid && ctty != 0 && !ours) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d leads its session, whose controlling terminal is %s (device %d:%d) outside "
          "the dumped tree: restore could not give it back",
          t.pid, tty::TerminalKind(ctty), major(ctty), minor(ctty)));
    }
    if (t.pid != t.stat->sid && !leader->zombie() && leader->stat->tty_nr != t.stat->tty_nr) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d has %s as controlling terminal but its session leader %d has %s: not "
          "supported",
          t.pid,
          ctty == 0 ? std::string("none")
                    : absl::StrFormat("device %d:%d", major(ctty), minor(ctty)),
          leader->pid,
          leader->stat->tty_nr == 0 ? std::string("none")
                                    : absl::StrFormat("device %d:%d", major(leader->stat->tty_nr),
                                                      minor(leader->stat->tty_nr))));
    }
  }
  return absl::OkStatus();
}

// A copy of the open description pid/fd in this process.
absl::StatusOr<OwnedFd> CopyOf(pid_t pid, int fd) {
  OwnedFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) return descriptions::Errno(Where(pid, fd) + ": pidfd_open");
  OwnedFd copy(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!copy.valid()) return descriptions::Errno(Where(pid, fd) + ": pidfd_getfd");
  return copy;
}

// One open description of a pty end, as ForEachDescription found it.
struct Desc {
  pid_t pid;
  int fd;
  bool master;
  unsigned index;
  uint32_t flags;
  std::string link;
  struct stat st;
  int32_t mnt_id;
};

// What the tty ioctls say about a pty, through copies of its two ends.
struct PtyState {
  int locked = 0, packet = 0, exclusive = 0;
  pid_t sid = 0, pgrp = 0;
  termios t{}, locked_t{};
  winsize ws{};
};

absl::Status ReadState(int master, int slave, const std::string& what, PtyState& s) {
  int ldisc = -1;
  if (ioctl(slave, TIOCGETD, &ldisc) != 0) return tty::Errno(what, "TIOCGETD");
  if (ldisc != N_TTY) {
    return absl::UnimplementedError(
        absl::StrFormat("%s uses line discipline %d: only N_TTY is supported", what, ldisc));
  }
  if (ioctl(master, TIOCGPTLCK, &s.locked) != 0) return tty::Errno(what, "TIOCGPTLCK");
  if (ioctl(master, TIOCGPKT, &s.packet) != 0) return tty::Errno(what, "TIOCGPKT");
  if (ioctl(slave, TIOCGEXCL, &s.exclusive) != 0) return tty::Errno(what, "TIOCGEXCL");
  if (ioctl(slave, TCGETS, &s.t) != 0) {
    return tty::Errno(what, "TCGETS (a hung-up terminal is not supported)");
  }
  if (ioctl(slave, TIOCGLCKTRMIOS, &s.locked_t) != 0) return tty::Errno(what, "TIOCGLCKTRMIOS");
  if (ioctl(slave, TIOCGWINSZ, &s.ws) != 0) return tty::Errno(what, "TIOCGWINSZ");
  // Through the master, from outside the session: the session and the
  // foreground group of the tty (no session: ENOTTY).
  if (ioctl(master, TIOCGSID, &s.sid) != 0) {
    if (errno != ENOTTY) return tty::Errno(what, "TIOCGSID");
    s.sid = 0;
  }
  if (ioctl(master, TIOCGPGRP, &s.pgrp) != 0) return tty::Errno(what, "TIOCGPGRP");
  return absl::OkStatus();
}

// The session and foreground group of the tty must be the tree's.
absl::Status CheckSession(const DumpContext& ctx, const PtyState& s, const std::string& what) {
  if (s.sid == 0) return absl::OkStatus();
  const TreeTask* leader = FindTask(ctx, s.sid);
  if (leader == nullptr || leader->zombie()) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s is the controlling terminal of session %d, whose leader is not in the dumped tree: "
        "not supported",
        what, s.sid));
  }
  if (s.pgrp == 0) return absl::OkStatus();
  for (const TreeTask& t : ctx.tree) {
    if (t.stat->pgid == s.pgrp && t.stat->sid == s.sid) return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrFormat(
      "%s: its foreground process group %d has no task in the dumped tree: not supported", what,
      s.pgrp));
}

criu::tty_info_entry InfoEntry(const PtyState& s, const Desc& end, bool master) {
  criu::tty_info_entry e;
  e.set_id(tty::InfoId(end.index, master));
  e.set_type(criu::PTY);
  e.set_locked(s.locked != 0);
  e.set_exclusive(s.exclusive != 0);
  e.set_packet_mode(s.packet != 0);
  e.set_sid(static_cast<uint32_t>(s.sid));
  e.set_pgrp(static_cast<uint32_t>(s.pgrp));
  e.set_rdev(static_cast<uint32_t>(end.st.st_rdev));
  tty::ToEntry(s.t, *e.mutable_termios());
  tty::ToEntry(s.locked_t, *e.mutable_termios_locked());
  auto* w = e.mutable_winsize();
  w->set_ws_row(s.ws.ws_row);
  w->set_ws_col(s.ws.ws_col);
  w->set_ws_xpixel(s.ws.ws_xpixel);
  w->set_ws_ypixel(s.ws.ws_ypixel);
  e.mutable_pty()->set_index(end.index);
  e.set_dev(static_cast<uint32_t>(end.st.st_dev));
  e.set_uid(end.st.st_uid);
  e.set_gid(end.st.st_gid);
  return e;
}

// Everything about pty INDEX: its state, its queued bytes (read out and put
// straight back), its tty-info and tty-data entries.
absl::Status DumpPty(const DumpContext& ctx, const Desc& master, const Desc& slave,
                     images::TypedImageWriter<criu::tty_info_entry>& info,
                     images::TypedImageWriter<criu::tty_data_entry>& data) {
  const std::string what =
      absl::StrFormat("pty %d (%s: master, %s: slave)", master.index, Where(master.pid, master.fd),
                      Where(slave.pid, slave.fd));
  auto m = CopyOf(master.pid, master.fd);
  if (!m.ok()) return m.status();
  auto s = CopyOf(slave.pid, slave.fd);
  if (!s.ok()) return s.status();
  PtyState state;
  if (auto st = ReadState(m->get(), s->get(), what, state); !st.ok()) return st;
  if (auto st = CheckSession(ctx, state, what); !st.ok()) return st;
  tty::Queued q;
  absl::Status drained = tty::Drain(m->get(), s->get(), what, q);
  // Whatever happens next, the tree gets its bytes back.
  absl::Status refilled = tty::Refill(m->get(), s->get(), q, what);
  if (!drained.ok()) return drained;
  if (!refilled.ok()) return refilled;
  if (!q.not_exact.empty()) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: the bytes queued in it cannot be restored exactly: %s", what, q.not_exact));
  }
  for (const auto* end : {&master, &slave}) {
    if (auto st = info.Write(InfoEntry(state, *end, end == &master)); !st.ok()) return st;
  }
  for (const auto& [bytes, reader] :
       {std::pair{&q.to_slave, &slave}, std::pair{&q.to_master, &master}}) {
    if (bytes->empty()) continue;
    criu::tty_data_entry d;
    d.set_tty_id(tty::InfoId(reader->index, reader == &master));
    d.set_data(*bytes);
    if (auto st = data.Write(d); !st.ok()) return st;
  }
  log::Info(
      "tty: %s: sid %d, foreground group %d, %s%s%s%d bytes queued for the slave, %d for the "
      "master",
      what, state.sid, state.pgrp, state.locked ? "locked, " : "",
      state.packet ? "packet mode, " : "", state.exclusive ? "exclusive, " : "", q.to_slave.size(),
      q.to_master.size());
  return absl::OkStatus();
}

// CRIU writes, next to each TTY entry, a REG entry of the same id: the path
// the end was opened at and its mode.
criu::file_entry RegTwin(const Desc& d) {
  criu::file_entry e;
  e.set_type(criu::REG);
  auto* reg = e.mutable_reg();
  reg->set_id(0);
  reg->set_flags(d.flags);
  reg->set_pos(0);
  SetNoOwner(*reg->mutable_fown());
  reg->set_name(d.link);
  if (d.mnt_id >= 0) reg->set_mnt_id(d.mnt_id);
  reg->set_mode(d.st.st_mode);
  return e;
}

}  // namespace

absl::Status Ttys::Precheck(DumpContext& ctx) {
  auto scan = ScanTree(ctx);
  if (!scan.ok()) return scan.status();
  return CheckScan(ctx, *scan);
}

absl::Status Ttys::Dump(DumpContext& ctx) {
  auto scan = ScanTree(ctx);
  if (!scan.ok()) return scan.status();
  if (auto s = CheckScan(ctx, *scan); !s.ok()) return s;
  if (scan->masters.empty()) return absl::OkStatus();
  // The paths of the ends of the tree's ptys (slaves of outside masters are
  // the fds plugin's).
  std::set<std::string> links;
  for (const PtyFd& p : scan->fds) {
    if (scan->masters.count(p.index)) links.insert(p.link);
  }
  std::vector<Desc> descs;
  absl::Status s = descriptions::ForEachDescription(
      ctx, [&links](std::string_view link) { return links.count(std::string(link)) > 0; },
      criu::TTY,
      [&](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        Desc d{f.pid, f.fd, tty::IsPtyMaster(f.st.st_rdev), 0, f.flags, f.link, f.st, -1};
        if (d.master) {
          auto n = f.info.Number("tty-index", 10, Where(f.pid, f.fd));
          if (!n.ok()) return n.status();
          d.index = static_cast<unsigned>(*n);
        } else if (tty::IsPtySlave(f.st.st_rdev)) {
          d.index = tty::PtyIndex(f.st.st_rdev);
        } else {
          return absl::InternalError(
              absl::StrFormat("%s (%s) is no pty end", Where(f.pid, f.fd), f.link));
        }
        if (!scan->masters.count(d.index)) {
          return absl::InternalError(absl::StrFormat("%s (%s): pty %d appeared during the dump",
                                                     Where(f.pid, f.fd), f.link, d.index));
        }
        if (auto mnt = f.info.Number("mnt_id", 10, Where(f.pid, f.fd)); mnt.ok()) {
          d.mnt_id = static_cast<int32_t>(*mnt);
        }
        auto* t = e.mutable_tty();
        t->set_id(0);
        t->set_tty_info_id(tty::InfoId(d.index, d.master));
        t->set_flags(f.flags);
        SetNoOwner(*t->mutable_fown());
        descs.push_back(std::move(d));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  for (const Desc& d : descs) {
    ctx.files->AddSameId(ctx.fd_ids.at({d.pid, d.fd}).id, RegTwin(d));
  }

  auto info = images::TypedImageWriter<criu::tty_info_entry>::Create(
      ctx.images_dir + "/tty-info.img", tty::TtyInfoImage());
  if (!info.ok()) return info.status();
  auto data = images::TypedImageWriter<criu::tty_data_entry>::Create(
      ctx.images_dir + "/tty-data.img", tty::TtyDataImage());
  if (!data.ok()) return data.status();
  for (unsigned index : scan->masters) {
    const Desc *master = nullptr, *slave = nullptr;
    for (const Desc& d : descs) {
      if (d.index != index) continue;
      if (d.master && master == nullptr) master = &d;
      if (!d.master && slave == nullptr) slave = &d;
    }
    if (master == nullptr || slave == nullptr) {
      return absl::InternalError(
          absl::StrFormat("pty %d: an end went away during the dump", index));
    }
    if (auto st = DumpPty(ctx, *master, *slave, *info, *data); !st.ok()) return st;
  }
  if (auto st = info->Close(); !st.ok()) return st;
  return data->Close();
}

}  // namespace crpp::resources
