// Dump half of the tty plugin (tty.h): which ptys the tree holds, the checks
// that refuse what restore could not bring back, and the images.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
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
#include "resources/tty/tty_scan.h"

namespace crpp::resources {
namespace {

using descriptions::Where;
using tty::OwnedFd;

const TreeTask* FindTask(const DumpContext& ctx, pid_t pid) {
  for (const TreeTask& t : ctx.tree) {
    if (t.pid == pid) return &t;
  }
  return nullptr;
}

// A copy of the open description pid/fd in this process.
absl::StatusOr<OwnedFd> CopyOf(pid_t pid, int fd) {
  OwnedFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) return descriptions::Errno(Where(pid, fd) + ": pidfd_open");
  OwnedFd copy(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!copy.valid()) return descriptions::Errno(Where(pid, fd) + ": pidfd_getfd");
  return copy;
}

// One open description of a pty end or external terminal, as
// ForEachDescription found it.
struct Desc {
  pid_t pid;
  int fd;
  tty::End end;
  unsigned index;
  uint32_t flags;
  std::string link;
  struct stat st;
  int32_t mnt_id;
  std::string key;  // of an external terminal
  bool master() const { return end == tty::End::kMaster; }
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

criu::tty_info_entry InfoEntry(const PtyState& s, const Desc& end) {
  criu::tty_info_entry e;
  e.set_id(tty::InfoId(end.index, end.master()));
  e.set_type(criu::PTY);
  e.set_locked(s.locked != 0);
  e.set_exclusive(s.exclusive != 0);
  e.set_packet_mode(s.packet != 0);
  e.set_sid(static_cast<uint32_t>(s.sid));
  e.set_pgrp(static_cast<uint32_t>(s.pgrp));
  e.set_rdev(static_cast<uint32_t>(end.st.st_rdev));
  tty::ToEntry(s.t, *e.mutable_termios());
  tty::ToEntry(s.locked_t, *e.mutable_termios_locked());
  tty::ToEntry(s.ws, *e.mutable_winsize());
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
    if (auto st = info.Write(InfoEntry(state, *end)); !st.ok()) return st;
  }
  for (const auto& [bytes, reader] :
       {std::pair{&q.to_slave, &slave}, std::pair{&q.to_master, &master}}) {
    if (bytes->empty()) continue;
    criu::tty_data_entry d;
    d.set_tty_id(tty::InfoId(reader->index, reader->master()));
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

// A terminal the tree uses but does not own (--external tty[RDEV:DEV]): its
// termios and window size, applied at restore to the terminal given with
// --inherit-fd. Its queued bytes stay where they are, with the outside end.
absl::Status DumpExternal(const DumpContext& ctx, const Desc& d, uint32_t id,
                          images::TypedImageWriter<criu::tty_info_entry>& info) {
  const std::string what =
      absl::StrFormat("the external terminal %s (%s, %s)", d.key, d.link, Where(d.pid, d.fd));
  auto fd = CopyOf(d.pid, d.fd);
  if (!fd.ok()) return fd.status();
  termios t{}, locked{};
  winsize ws{};
  if (ioctl(fd->get(), TCGETS, &t) != 0) return tty::Errno(what, "TCGETS");
  if (ioctl(fd->get(), TIOCGLCKTRMIOS, &locked) != 0) return tty::Errno(what, "TIOCGLCKTRMIOS");
  if (ioctl(fd->get(), TIOCGWINSZ, &ws) != 0) return tty::Errno(what, "TIOCGWINSZ");
  criu::tty_info_entry e;
  e.set_id(id);
  e.set_type(criu::EXT_TTY);
  e.set_locked(false);
  e.set_exclusive(false);
  e.set_packet_mode(false);
  // The session whose controlling terminal it is, if its leader is ours:
  // outside the session the tty's ioctls do not tell, /proc does.
  pid_t sid = 0, pgrp = 0;
  for (const TreeTask& task : ctx.tree) {
    if (!task.zombie() && task.pid == task.stat->sid && task.stat->tty_nr == d.st.st_rdev) {
      sid = task.pid;
      pgrp = task.stat->tpgid > 0 ? task.stat->tpgid : 0;
    }
  }
  e.set_sid(static_cast<uint32_t>(sid));
  e.set_pgrp(static_cast<uint32_t>(pgrp));
  e.set_rdev(static_cast<uint32_t>(d.st.st_rdev));
  e.set_dev(static_cast<uint32_t>(d.st.st_dev));
  tty::ToEntry(t, *e.mutable_termios());
  tty::ToEntry(locked, *e.mutable_termios_locked());
  tty::ToEntry(ws, *e.mutable_winsize());
  log::Info("tty: %s is external (tty-info %d), session %d, foreground group %d", what, id, sid,
            pgrp);
  return info.Write(e);
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
  auto scan = tty::ScanTree(ctx);
  if (!scan.ok()) return scan.status();
  return tty::CheckScan(ctx, *scan);
}

absl::Status Ttys::Dump(DumpContext& ctx) {
  auto scan = tty::ScanTree(ctx);
  if (!scan.ok()) return scan.status();
  if (auto s = tty::CheckScan(ctx, *scan); !s.ok()) return s;
  // The paths of the terminals this plugin takes (the ends of the tree's
  // ptys and the external ones); the others are the fds plugin's.
  std::map<std::string, tty::End> links;
  for (const tty::TtyFd& f : scan->fds) {
    if (f.end != tty::End::kOther) links[f.link] = f.end;
  }
  if (links.empty()) return absl::OkStatus();
  std::vector<Desc> descs;
  std::map<std::string, uint32_t> external_ids;  // key -> tty-info id
  absl::Status s = descriptions::ForEachDescription(
      ctx, [&links](std::string_view link) { return links.count(std::string(link)) > 0; },
      criu::TTY,
      [&](const descriptions::Found& f, criu::file_entry& e) -> absl::Status {
        Desc d{f.pid, f.fd, links.at(f.link), 0, f.flags, f.link, f.st, -1, {}};
        uint32_t info_id = 0;
        if (d.end == tty::End::kExternal) {
          d.key = tty::ExternalKey(f.st.st_rdev, f.st.st_dev);
          auto [it, added] = external_ids.emplace(
              d.key, tty::ExternalInfoId(static_cast<unsigned>(external_ids.size())));
          info_id = it->second;
        } else {
          auto index = d.master() ? f.info.Number("tty-index", 10, Where(f.pid, f.fd))
                                  : absl::StatusOr<uint64_t>(tty::PtyIndex(f.st.st_rdev));
          if (!index.ok()) return index.status();
          d.index = static_cast<unsigned>(*index);
          if (!scan->masters.count(d.index)) {
            return absl::InternalError(absl::StrFormat("%s (%s): pty %d appeared during the dump",
                                                       Where(f.pid, f.fd), f.link, d.index));
          }
          info_id = tty::InfoId(d.index, d.master());
        }
        if (auto mnt = f.info.Number("mnt_id", 10, Where(f.pid, f.fd)); mnt.ok()) {
          d.mnt_id = static_cast<int32_t>(*mnt);
        }
        auto* t = e.mutable_tty();
        t->set_id(0);
        t->set_tty_info_id(info_id);
        t->set_flags(f.flags);
        SetNoOwner(*t->mutable_fown());
        descs.push_back(std::move(d));
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  for (const Desc& d : descs) {
    // CRIU writes no path for an external terminal: restore never opens it.
    if (d.end != tty::End::kExternal) {
      ctx.files->AddSameId(ctx.fd_ids.at({d.pid, d.fd}).id, RegTwin(d));
    }
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
      if (d.end == tty::End::kExternal || d.index != index) continue;
      if (d.master() && master == nullptr) master = &d;
      if (!d.master() && slave == nullptr) slave = &d;
    }
    if (master == nullptr || slave == nullptr) {
      return absl::InternalError(
          absl::StrFormat("pty %d: an end went away during the dump", index));
    }
    if (auto st = DumpPty(ctx, *master, *slave, *info, *data); !st.ok()) return st;
  }
  for (const auto& [key, id] : external_ids) {
    auto first = std::find_if(descs.begin(), descs.end(), [&](const Desc& d) {
      return d.end == tty::End::kExternal && d.key == key;
    });
    if (auto st = DumpExternal(ctx, *first, id, *info); !st.ok()) return st;
  }
  if (auto st = info->Close(); !st.ok()) return st;
  return data->Close();
}

}  // namespace crpp::resources
