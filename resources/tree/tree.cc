#include "resources/tree/tree.h"

#include <unistd.h>

#include "absl/strings/str_format.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "pstree.pb.h"

namespace crpp::resources {
namespace {

// Ids of kernel objects a task uses (mm, fd table, fs, signal handlers).
// With one process every object is its own; ids only need to be stable.
criu::task_kobj_ids_entry OwnIds() {
  criu::task_kobj_ids_entry ids;
  ids.set_vm_id(1);
  ids.set_files_id(1);
  ids.set_fs_id(1);
  ids.set_sighand_id(1);
  return ids;
}

}  // namespace

absl::Status Tree::Precheck(DumpContext& ctx) {
  pid_t pid = ctx.root_pid;
  if (ctx.status->threads > 1) {
    return absl::UnimplementedError(
        absl::StrFormat("pid %d has %d threads: multi-threaded processes are not supported yet",
                        pid, ctx.status->threads));
  }
  auto children = proc::ListChildren(pid);
  if (!children.ok()) return children.status();
  if (!children->empty()) {
    return absl::UnimplementedError(
        absl::StrFormat("pid %d has child processes (e.g. %d): process trees are not supported yet",
                        pid, children->front()));
  }
  if (ctx.stat->state == 'Z') {
    return absl::FailedPreconditionError(absl::StrFormat("pid %d is a zombie", pid));
  }
  // The session and group must be the task's own, or (--shell-job) those of
  // the shell that restore will run in.
  if (!ctx.shell_job && (ctx.stat->sid != pid || ctx.stat->pgid != pid)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "pid %d belongs to session %d and process group %d outside the dumped tree: "
        "dump it with --shell-job (it will join the restoring shell's session), or start it "
        "with setsid",
        pid, ctx.stat->sid, ctx.stat->pgid));
  }
  return absl::OkStatus();
}

absl::Status Tree::Dump(DumpContext& ctx) {
  pid_t pid = ctx.root_pid;
  criu::pstree_entry e;
  e.set_pid(pid);
  e.set_ppid(0);  // the root of the dumped tree
  e.set_pgid(ctx.stat->pgid);
  e.set_sid(ctx.stat->sid);
  e.add_threads(pid);
  auto w = images::TypedImageWriter<criu::pstree_entry>::Create(ctx.images_dir + "/pstree.img",
                                                                images::Pstree());
  if (!w.ok()) return w.status();
  if (auto s = w->Write(e); !s.ok()) return s;
  if (auto s = w->Close(); !s.ok()) return s;
  auto ids = images::TypedImageWriter<criu::task_kobj_ids_entry>::Create(
      absl::StrFormat("%s/ids-%d.img", ctx.images_dir, pid), images::Ids());
  if (!ids.ok()) return ids.status();
  if (auto s = ids->Write(OwnIds()); !s.ok()) return s;
  return ids->Close();
}

absl::Status Tree::Restore(RestoreContext& ctx) {
  std::string path = ctx.images_dir + "/pstree.img";
  auto tree = images::ReadAll<criu::pstree_entry>(path, images::Pstree());
  if (!tree.ok()) return tree.status();
  if (tree->size() != 1) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: %d tasks: restoring process trees is not supported yet", path, tree->size()));
  }
  const criu::pstree_entry& e = tree->front();
  if (e.threads_size() > 1) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: pid %d has threads: not supported yet", path, e.pid()));
  }
  if (getpid() != static_cast<pid_t>(e.pid())) {
    return absl::InternalError(
        absl::StrFormat("restoring pid %d but running as pid %d", e.pid(), getpid()));
  }
  // Session and group: a shell job joins the restoring shell's session (and
  // takes a group of its own when it led one); otherwise it leads its own.
  if (ctx.shell_job) {
    if (e.pgid() == e.pid() && setpgid(0, 0) != 0) {
      return absl::InternalError(absl::StrFormat("pid %d: setpgid: %s", e.pid(), strerror(errno)));
    }
  } else if (e.sid() == e.pid()) {
    if (setsid() < 0) {
      return absl::InternalError(absl::StrFormat("pid %d: setsid: %s", e.pid(), strerror(errno)));
    }
  }
  log::Info("tree: pid %d (pgid %d, sid %d)", e.pid(), getpgid(0), getsid(0));
  return absl::OkStatus();
}

}  // namespace crpp::resources
