#include "resources/tty/tty_scan.h"

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_format.h"
#include "core/proc/proc.h"
#include "resources/common/descriptions.h"
#include "resources/tty/devices.h"

namespace crpp::resources::tty {
namespace {

using descriptions::Where;

const TreeTask* FindTask(const DumpContext& ctx, pid_t pid) {
  for (const TreeTask& t : ctx.tree) {
    if (t.pid == pid) return &t;
  }
  return nullptr;
}

bool Listed(const DumpContext& ctx, const std::string& key) {
  return std::find(ctx.external.begin(), ctx.external.end(), key) != ctx.external.end();
}

std::string Device(dev_t d) {
  return d == 0 ? std::string("none") : absl::StrFormat("device %d:%d", major(d), minor(d));
}

}  // namespace

absl::StatusOr<Scan> ScanTree(DumpContext& ctx) {
  Scan scan;
  absl::Status walked =
      ctx.ForEachTreeFd([&](pid_t pid, const DumpContext::OpenFd& open) -> absl::Status {
        const int fd = open.fd;
        const struct stat& st = open.st;
        if (!S_ISCHR(st.st_mode) || !IsTerminalDevice(st.st_rdev)) return absl::OkStatus();
        TtyFd f{pid, fd, {}, st, End::kOther, 0, {}};
        if (IsPtyMaster(st.st_rdev)) {
          auto info = descriptions::ReadFdInfoLines(pid, fd);
          if (!info.ok()) return info.status();
          auto n = info->Number("tty-index", 10, Where(pid, fd));
          if (!n.ok()) return n.status();
          f.end = End::kMaster;
          f.index = static_cast<unsigned>(*n);
          scan.masters.insert(f.index);
        } else {
          f.key = ExternalKey(st.st_rdev, st.st_dev);
          if (IsPtySlave(st.st_rdev)) {
            f.index = PtyIndex(st.st_rdev);
            scan.slaves.insert(f.index);
          } else if (!Listed(ctx, f.key)) {
            return absl::OkStatus();  // a console or serial line: the fds plugin's
          }
        }
        f.link = open.link;
        scan.fds.push_back(std::move(f));
        return absl::OkStatus();
      });
  if (!walked.ok()) return walked;
  // A slave is the tree's when its master is; else it may be external.
  for (TtyFd& f : scan.fds) {
    if (f.end == End::kMaster) continue;
    if (IsPtySlave(f.st.st_rdev) && scan.masters.count(f.index)) {
      f.end = End::kSlave;
    } else if (Listed(ctx, f.key)) {
      f.end = End::kExternal;
    }
  }
  return scan;
}

absl::Status CheckScan(const DumpContext& ctx, const Scan& scan) {
  struct stat devpts;
  bool have_devpts = stat("/dev/pts", &devpts) == 0;
  for (const TtyFd& f : scan.fds) {
    const std::string where = Where(f.pid, f.fd);
    if (f.end == End::kMaster && !scan.slaves.count(f.index)) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is the master of pty %d (/dev/pts/%d), whose slave no task of the dumped tree "
          "holds: not supported",
          where, f.index, f.index));
    }
    if (f.end == End::kOther && !ctx.shell_job) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is %s, a pty slave whose master is not in the dumped tree: dump with --shell-job "
          "to restore it on the caller's terminal, or with --external %s to restore it on a "
          "terminal given with --inherit-fd",
          where, f.link, f.key));
    }
    if (f.end == End::kSlave && have_devpts && f.st.st_dev != devpts.st_dev) {
      return absl::UnimplementedError(absl::StrFormat(
          "%s is %s of another devpts instance than /dev/pts: not supported", where, f.link));
    }
  }
  for (const TreeTask& t : ctx.tree) {
    if (t.zombie()) continue;
    const dev_t ctty = t.stat->tty_nr;
    const TreeTask* leader = FindTask(ctx, t.stat->sid);
    bool ours = ctty != 0 && IsPtySlave(ctty) && scan.masters.count(PtyIndex(ctty));
    // An external terminal the tree holds may be a controlling terminal too.
    bool external = ctty != 0 && std::any_of(scan.fds.begin(), scan.fds.end(), [&](const TtyFd& f) {
                      return f.end == End::kExternal && f.st.st_rdev == ctty;
                    });
    if (ours && (leader == nullptr || leader->zombie())) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d: its controlling terminal is pty %d of the dumped tree, but its session "
          "leader %d is not in the tree: not supported",
          t.pid, PtyIndex(ctty), t.stat->sid));
    }
    if (leader == nullptr) continue;  // a shell job: the session is the caller's
    if (t.pid == t.stat->sid && ctty != 0 && !ours && !external) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d leads its session, whose controlling terminal is %s (device %d:%d) outside "
          "the dumped tree: restore could not give it back",
          t.pid, TerminalKind(ctty), major(ctty), minor(ctty)));
    }
    if (t.pid != t.stat->sid && !leader->zombie() && leader->stat->tty_nr != t.stat->tty_nr) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d has %s as controlling terminal but its session leader %d has %s: not supported",
          t.pid, Device(ctty), leader->pid, Device(leader->stat->tty_nr)));
    }
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources::tty
