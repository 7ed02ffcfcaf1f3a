// Restore half of the tty plugin (tty.h): the ptys are made again in the
// root before the fork; each task then takes its controlling terminal and
// sets the foreground group before it forks its own children.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "fdinfo.pb.h"
#include "pstree.pb.h"
#include "resources/tty/devices.h"
#include "resources/tty/pty_queue.h"
#include "resources/tty/tty.h"
#include "resources/tty/tty_internal.h"

namespace crpp::resources {
namespace {

using tty::OwnedFd;

// What the images say about one pty.
struct PtyImage {
  unsigned index = 0;
  const criu::tty_info_entry* master_info = nullptr;
  const criu::tty_info_entry* slave_info = nullptr;  // its uid and gid are the slave's
  const criu::file_entry* master_file = nullptr;
  std::vector<const criu::file_entry*> slave_files;
  const criu::reg_file_entry* slave_path = nullptr;  // the REG entry next to a slave's TTY entry
  tty::Queued queued;
};

// A terminal the tree used but did not own (--external tty[RDEV:DEV]).
struct ExternalImage {
  const criu::tty_info_entry* info = nullptr;
  std::vector<const criu::file_entry*> files;
};

struct TtyImages {
  std::vector<criu::tty_info_entry> infos;
  std::vector<criu::file_entry> files;  // all of files.img
  std::map<unsigned, PtyImage> ptys;
  std::map<uint32_t, ExternalImage> externals;  // by tty-info id
};

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Reads tty-info.img, tty-data.img and the TTY entries of files.img. False
// when the dump had no pty.
absl::StatusOr<bool> Load(const std::string& dir, TtyImages& out) {
  const std::string info_path = dir + "/tty-info.img";
  if (!Exists(info_path)) return false;
  auto infos = images::ReadAll<criu::tty_info_entry>(info_path, tty::TtyInfoImage());
  if (!infos.ok()) return infos.status();
  out.infos = std::move(*infos);
  auto files = images::ReadAll<criu::file_entry>(dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  out.files = std::move(*files);

  std::map<uint32_t, const criu::tty_info_entry*> by_id;
  for (const auto& e : out.infos) {
    if (e.type() == criu::EXT_TTY) {
      by_id[e.id()] = &e;
      out.externals[e.id()].info = &e;
      continue;
    }
    if (e.type() != criu::PTY || !e.has_pty()) {
      return absl::UnimplementedError(absl::StrFormat(
          "tty-info.img: entry %d is a terminal of type %s: only ptys are supported", e.id(),
          criu::TtyType_Name(e.type())));
    }
    if (e.id() != tty::InfoId(e.pty().index(), e.id() % 2 == 1)) {
      return absl::DataLossError(absl::StrFormat(
          "tty-info.img: entry %d does not match its pty index %d", e.id(), e.pty().index()));
    }
    by_id[e.id()] = &e;
    PtyImage& p = out.ptys[e.pty().index()];
    p.index = e.pty().index();
    (e.id() % 2 == 1 ? p.master_info : p.slave_info) = &e;
  }
  std::map<uint32_t, const criu::reg_file_entry*> paths;
  for (const auto& f : out.files) {
    if (f.has_reg()) paths[f.id()] = &f.reg();
  }
  for (const auto& f : out.files) {
    if (f.type() != criu::TTY) continue;
    if (!f.has_tty()) {
      return absl::DataLossError(absl::StrFormat("files.img: TTY entry %d has no tty", f.id()));
    }
    auto info = by_id.find(f.tty().tty_info_id());
    if (info == by_id.end()) {
      return absl::DataLossError(
          absl::StrFormat("files.img: tty file %d refers to tty-info %d, which tty-info.img lacks",
                          f.id(), f.tty().tty_info_id()));
    }
    if (info->second->type() == criu::EXT_TTY) {
      out.externals[info->second->id()].files.push_back(&f);
      continue;
    }
    PtyImage& p = out.ptys[info->second->pty().index()];
    if (info->second->id() % 2 == 1) {
      if (p.master_file != nullptr) {
        return absl::DataLossError(
            absl::StrFormat("files.img: pty %d has two masters (file ids %d and %d)", p.index,
                            p.master_file->id(), f.id()));
      }
      p.master_file = &f;
    } else {
      p.slave_files.push_back(&f);
      if (auto it = paths.find(f.id()); it != paths.end()) p.slave_path = it->second;
    }
  }
  const std::string data_path = dir + "/tty-data.img";
  if (Exists(data_path)) {
    auto data = images::ReadAll<criu::tty_data_entry>(data_path, tty::TtyDataImage());
    if (!data.ok()) return data.status();
    for (const auto& d : *data) {
      auto info = by_id.find(d.tty_id());
      if (info == by_id.end() || !info->second->has_pty()) {
        return absl::DataLossError(absl::StrFormat(
            "tty-data.img: bytes for tty-info %d, which tty-info.img lacks", d.tty_id()));
      }
      PtyImage& p = out.ptys[info->second->pty().index()];
      (d.tty_id() % 2 == 1 ? p.queued.to_master : p.queued.to_slave).append(d.data());
    }
  }
  for (const auto& [index, p] : out.ptys) {
    if (p.master_info == nullptr || p.master_file == nullptr || p.slave_files.empty()) {
      return absl::UnimplementedError(absl::StrFormat(
          "pty %d: the images hold %s%s%s: only ptys whose master and slave were both dumped "
          "are supported",
          index, p.master_info ? "" : "no master tty-info entry, ",
          p.master_file ? "" : "no master file, ", p.slave_files.empty() ? "no slave file" : ""));
    }
    if (!p.master_info->has_termios() || !p.master_info->has_termios_locked() ||
        !p.master_info->has_winsize()) {
      return absl::UnimplementedError(absl::StrFormat(
          "pty %d: tty-info %d has no termios or window size (a hung-up pty): not supported", index,
          p.master_info->id()));
    }
  }
  return true;
}

// /dev/ptmx opened until the kernel hands out INDEX (it gives the lowest
// free one); the extra masters opened on the way are closed.
absl::StatusOr<OwnedFd> OpenPtmxAt(unsigned index, const std::string& what) {
  std::vector<OwnedFd> below;
  for (;;) {
    OwnedFd fd(open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!fd.valid()) return tty::Errno(what, "opening /dev/ptmx");
    unsigned got = 0;
    if (ioctl(fd.get(), TIOCGPTN, &got) != 0) return tty::Errno(what, "TIOCGPTN");
    if (got == index) return fd;
    if (got > index) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "%s: pty index %d is taken by another process (/dev/ptmx gave %d): cannot restore the "
          "pty with its index",
          what, index, got));
    }
    below.push_back(std::move(fd));
  }
}

absl::Status SetFlags(int fd, uint32_t flags, const std::string& what) {
  if (fcntl(fd, F_SETFL, static_cast<int>(flags)) != 0) {
    return tty::Errno(what, absl::StrFormat("F_SETFL %#o", flags));
  }
  return absl::OkStatus();
}

absl::Status RestorePty(RestoreContext& ctx, const PtyImage& p) {
  const criu::tty_info_entry& info = *p.master_info;
  const std::string what =
      absl::StrFormat("pty %d (master file id %d)", p.index, p.master_file->id());
  auto master = OpenPtmxAt(p.index, what);
  if (!master.ok()) return master.status();
  const int m = master->get();
  int unlock = 0;
  if (ioctl(m, TIOCSPTLCK, &unlock) != 0) return tty::Errno(what, "TIOCSPTLCK");
  // A slave of our own for the settings; the tasks' ones are opened below.
  OwnedFd helper(ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!helper.valid()) return tty::Errno(what, "TIOCGPTPEER");
  termios t, locked;
  if (auto s = tty::FromEntry(info.termios(), what, t); !s.ok()) return s;
  if (auto s = tty::FromEntry(info.termios_locked(), what, locked); !s.ok()) return s;
  if (ioctl(helper.get(), TCSETS, &t) != 0) return tty::Errno(what, "TCSETS");
  winsize ws{};
  ws = tty::FromEntry(info.winsize());
  if (ioctl(helper.get(), TIOCSWINSZ, &ws) != 0) return tty::Errno(what, "TIOCSWINSZ");
  const criu::tty_info_entry* owner = p.slave_info;
  if (owner != nullptr && owner->has_uid() && owner->has_gid() &&
      fchown(helper.get(), owner->uid(), owner->gid()) != 0) {
    return tty::Errno(what,
                      absl::StrFormat("chown of the slave to %d:%d", owner->uid(), owner->gid()));
  }
  if (p.slave_path != nullptr && p.slave_path->has_mode() &&
      fchmod(helper.get(), p.slave_path->mode() & 07777) != 0) {
    return tty::Errno(what, "chmod of the slave");
  }
  if (auto s = tty::Refill(m, helper.get(), p.queued, what); !s.ok()) return s;
  for (const criu::file_entry* f : p.slave_files) {
    uint32_t flags = f->tty().flags();
    OwnedFd slave(ioctl(m, TIOCGPTPEER, (flags & O_ACCMODE) | O_NOCTTY | O_CLOEXEC));
    if (!slave.valid()) {
      return tty::Errno(what, absl::StrFormat("opening the slave (file id %d)", f->id()));
    }
    if (auto s = SetFlags(slave.get(), flags, what); !s.ok()) return s;
    if (auto s = ctx.Inherit(f->id(), slave.Release()); !s.ok()) return s;
  }
  // The settings that would get in the way of the ones above come last.
  if (ioctl(helper.get(), TIOCSLCKTRMIOS, &locked) != 0) {
    return tty::Errno(what, "TIOCSLCKTRMIOS");
  }
  if (info.exclusive() && ioctl(helper.get(), TIOCEXCL) != 0) return tty::Errno(what, "TIOCEXCL");
  int packet = info.packet_mode() ? 1 : 0;
  if (ioctl(m, TIOCPKT, &packet) != 0) return tty::Errno(what, "TIOCPKT");
  int lock = info.locked() ? 1 : 0;
  if (ioctl(m, TIOCSPTLCK, &lock) != 0) return tty::Errno(what, "TIOCSPTLCK");
  if (auto s = SetFlags(m, p.master_file->tty().flags(), what); !s.ok()) return s;
  if (auto s = ctx.Inherit(p.master_file->id(), master->Release()); !s.ok()) return s;
  log::Info(
      "tty: %s restored with %d slave descriptions, %d bytes queued for the slave, %d for "
      "the master",
      what, p.slave_files.size(), p.queued.to_slave.size(), p.queued.to_master.size());
  return absl::OkStatus();
}

// The terminal given with --inherit-fd fd[N]:tty[RDEV:DEV] stands for an
// external one: it gets its termios and window size (as CRIU does; not the
// locked termios: it is the caller's), and every description of the old one
// becomes a copy of it.
absl::Status RestoreExternal(RestoreContext& ctx, const ExternalImage& x) {
  const criu::tty_info_entry& info = *x.info;
  const std::string key = tty::ExternalKey(info.rdev(), info.dev());
  const std::string what = absl::StrFormat("the external terminal %s", key);
  auto given = ctx.inherit_fds.find(key);
  if (given == ctx.inherit_fds.end()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s was dumped as external: give the terminal that stands for it with --inherit-fd "
        "fd[N]:%s",
        what, key));
  }
  const int fd = given->second;
  if (!isatty(fd)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--inherit-fd fd[%d]:%s: not a terminal", fd, key));
  }
  if (info.has_termios()) {
    termios t;
    if (auto s = tty::FromEntry(info.termios(), what, t); !s.ok()) return s;
    if (ioctl(fd, TCSETS, &t) != 0) return tty::Errno(what, "TCSETS");
  }
  if (info.has_winsize()) {
    winsize ws = tty::FromEntry(info.winsize());
    if (ioctl(fd, TIOCSWINSZ, &ws) != 0) return tty::Errno(what, "TIOCSWINSZ");
  }
  for (const criu::file_entry* f : x.files) {
    OwnedFd copy(fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (!copy.valid()) return tty::Errno(what, "F_DUPFD");
    if (auto s = SetFlags(copy.get(), f->tty().flags(), what); !s.ok()) return s;
    if (auto s = ctx.Inherit(f->id(), copy.Release()); !s.ok()) return s;
  }
  log::Info("tty: %s restored on the inherited fd %d (%d descriptions)", what, fd, x.files.size());
  return absl::OkStatus();
}

// The task that makes PGRP the foreground group of a tty of session SID: its
// leader, or else the first task of the group (pstree order).
pid_t ForegroundSetter(const std::vector<criu::pstree_entry>& tree, pid_t pgrp, pid_t sid) {
  pid_t first = 0;
  for (const auto& e : tree) {
    if (static_cast<pid_t>(e.pgid()) != pgrp || static_cast<pid_t>(e.sid()) != sid) continue;
    if (static_cast<pid_t>(e.pid()) == pgrp) return pgrp;
    if (first == 0) first = static_cast<pid_t>(e.pid());
  }
  return first;
}

}  // namespace

absl::Status Ttys::Restore(RestoreContext& ctx) {
  TtyImages loaded;
  auto any = Load(ctx.images_dir, loaded);
  if (!any.ok()) return any.status();
  if (!*any) return absl::OkStatus();
  // In index order: a pty opened first cannot take an index a later one
  // needs, since each search closes what it opened below its own.
  for (const auto& [index, p] : loaded.ptys) {
    if (auto s = RestorePty(ctx, p); !s.ok()) return s;
  }
  for (const auto& [id, x] : loaded.externals) {
    if (auto s = RestoreExternal(ctx, x); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Ttys::RestoreBeforeChildren(RestoreContext& ctx) {
  TtyImages loaded;
  auto any = Load(ctx.images_dir, loaded);
  if (!any.ok()) return any.status();
  if (!*any) return absl::OkStatus();
  // Each terminal that is a session's controlling terminal, with an fd of
  // it the tasks inherited: a pty's master (through which the ioctls act on
  // the slave), an external terminal's copy.
  struct Ctty {
    const criu::tty_info_entry* info;
    uint32_t file_id;
    std::string name;
    bool external;
  };
  std::vector<Ctty> cttys;
  for (const auto& [index, p] : loaded.ptys) {
    cttys.push_back({p.master_info, p.master_file->id(), absl::StrFormat("pty %d", index), false});
  }
  for (const auto& [id, x] : loaded.externals) {
    if (x.files.empty()) continue;
    cttys.push_back({x.info, x.files.front()->id(),
                     "the external terminal " + tty::ExternalKey(x.info->rdev(), x.info->dev()),
                     true});
  }
  std::vector<criu::pstree_entry> tree;
  for (const Ctty& c : cttys) {
    const auto sid = static_cast<pid_t>(c.info->sid()), pgrp = static_cast<pid_t>(c.info->pgrp());
    if (sid == 0) continue;
    if (tree.empty()) {
      auto read =
          images::ReadAll<criu::pstree_entry>(ctx.images_dir + "/pstree.img", images::Pstree());
      if (!read.ok()) return read.status();
      tree = std::move(*read);
    }
    bool leader = ctx.pid == sid;
    bool setter = pgrp != 0 && ctx.pid == ForegroundSetter(tree, pgrp, sid);
    if (!leader && !setter) continue;
    auto fd = ctx.inherited.find(c.file_id);
    if (fd == ctx.inherited.end()) {
      return absl::InternalError(
          absl::StrFormat("%s: its file id %d was not opened before the fork", c.name, c.file_id));
    }
    // An external terminal may be the restoring session's own terminal: it
    // is taken over (1: steal, as root), as CRIU does.
    if (leader && ioctl(fd->second, TIOCSCTTY, c.external ? 1 : 0) != 0) {
      return tty::Errno(absl::StrFormat("pid %d", ctx.pid),
                        absl::StrFormat("taking %s as controlling terminal", c.name));
    }
    if (setter && ioctl(fd->second, TIOCSPGRP, &pgrp) != 0) {
      return tty::Errno(absl::StrFormat("pid %d", ctx.pid),
                        absl::StrFormat("making group %d the foreground of %s", pgrp, c.name));
    }
    log::Info("tty: pid %d:%s%s %s", ctx.pid, leader ? " controlling terminal" : "",
              setter ? absl::StrFormat(" foreground group %d of", pgrp) : "", c.name);
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
