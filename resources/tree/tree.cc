#include "resources/tree/tree.h"

#include <errno.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/strings/str_format.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/ptrace/task.h"
#include "pstree.pb.h"

namespace crpp::resources {
namespace {

const TreeTask* Find(const DumpContext& ctx, pid_t pid) {
  for (const TreeTask& t : ctx.tree) {
    if (t.pid == pid) return &t;
  }
  return nullptr;
}

bool SameFs(pid_t a, pid_t b) { return syscall(SYS_kcmp, a, b, KCMP_FS, 0, 0) == 0; }

// The highest of `t` and its ancestors in the tree that all share one fs
// (clone(CLONE_FS) along the parent links): restore recreates the sharing by
// forking each child with CLONE_FS from its parent.
const TreeTask* FsOwner(const DumpContext& ctx, const TreeTask& t) {
  const TreeTask* owner = &t;
  for (const TreeTask* up = Find(ctx, t.ppid);
       up != nullptr && !up->zombie() && SameFs(owner->pid, up->pid); up = Find(ctx, up->ppid)) {
    owner = up;
  }
  return owner;
}

// The id of the fd table `t` uses (TreeTask::files_id, its own id unset).
uint32_t FilesId(const TreeTask& t) { return t.files_id != 0 ? t.files_id : t.id; }

// Ids of the kernel objects a task uses (mm, fd table, fs, signal handlers):
// its own (its id, 1, 2, ... in tree order) but for an fd table or an fs it
// shares with its parent, which carries the parent's id (CRIU's convention:
// restore forks such a child with CLONE_FILES / CLONE_FS).
criu::task_kobj_ids_entry Ids(const DumpContext& ctx, const TreeTask& t) {
  criu::task_kobj_ids_entry ids;
  ids.set_vm_id(t.id);
  ids.set_files_id(FilesId(t));
  ids.set_fs_id(FsOwner(ctx, t)->id);
  ids.set_sighand_id(t.id);
  return ids;
}

// Session and group of a task below the root: restore recreates them by
// setsid()/setpgid() right after the task is forked, so each must be the
// task's own, inherited from its parent, or (a group) one led by a task of
// the tree in the same session.
absl::Status CheckChildIds(const DumpContext& ctx) {
  pid_t pid = ctx.pid;
  const proc::Stat& st = *ctx.stat;
  const TreeTask* me = Find(ctx, pid);
  const TreeTask* parent = me ? Find(ctx, me->ppid) : nullptr;
  if (parent == nullptr) return absl::OkStatus();  // a tree without links (tests)
  if (st.sid != pid && st.sid != parent->stat->sid) {
    return absl::UnimplementedError(
        absl::StrFormat("pid %d is in session %d, which is neither its own nor its parent's (%d): "
                        "not supported yet",
                        pid, st.sid, parent->stat->sid));
  }
  if (st.pgid == pid || st.pgid == parent->stat->pgid) return absl::OkStatus();
  const TreeTask* leader = Find(ctx, st.pgid);
  if (leader == nullptr || leader->stat->sid != st.sid) {
    return absl::UnimplementedError(absl::StrFormat(
        "pid %d is in process group %d, led by no task of the dumped tree: not supported yet", pid,
        st.pgid));
  }
  return absl::OkStatus();
}

// Processes of the tree that share what only threads share (an address
// space without CLONE_THREAD, as vfork() makes, and with it maybe signal
// handlers: the kernel allows CLONE_SIGHAND only with CLONE_VM): restore
// would give each its own, so such a tree is refused, naming both pids and
// what they share. An fd table and an fs (cwd, root, umask) are restored
// shared when they are shared along parent links (a chain of
// clone(CLONE_FILES) / clone(CLONE_FS) children: restore forks each child
// with the flag from its parent); shared otherwise (by siblings whose parent
// has its own, or by a task and its grandparent but not the parent between),
// they are refused too.
absl::Status CheckNothingShared(const DumpContext& ctx) {
  struct Kind {
    int type;
    const char* what;
  };
  static constexpr Kind kKinds[] = {
      {KCMP_VM, "their address space (CLONE_VM, e.g. a vfork() in progress)"},
      {KCMP_FILES, "their fd table (CLONE_FILES) but not as a child with its parent's"},
      {KCMP_FS, "their root, cwd and umask (CLONE_FS) but not with a parent's"},
      {KCMP_SIGHAND, "their signal handlers (CLONE_SIGHAND)"},
  };
  // Once for the whole tree, at the root: kcmp orders the objects, so the
  // tasks sorted by each kind of object hold shared ones next to each other.
  if (ctx.pid != ctx.root_pid) return absl::OkStatus();
  std::vector<pid_t> live;
  for (const TreeTask& t : ctx.tree) {
    if (!t.zombie()) live.push_back(t.pid);
  }
  // Sharing that restore recreates: an fd table or fs both tasks have from
  // the same ancestor along the parent links.
  auto restorable = [&ctx](int type, pid_t a, pid_t b) {
    const TreeTask &ta = *Find(ctx, a), &tb = *Find(ctx, b);
    if (type == KCMP_FILES) return FilesId(ta) == FilesId(tb);
    if (type == KCMP_FS) return FsOwner(ctx, ta) == FsOwner(ctx, tb);
    return false;
  };
  for (const Kind& k : kKinds) {
    auto cmp = [&k](pid_t a, pid_t b) { return syscall(SYS_kcmp, a, b, k.type, 0, 0); };
    std::vector<pid_t> order = live;
    std::sort(order.begin(), order.end(), [&](pid_t a, pid_t b) { return cmp(a, b) == 1; });
    for (size_t i = 0; i + 1 < order.size(); ++i) {
      pid_t a = std::min(order[i], order[i + 1]), b = std::max(order[i], order[i + 1]);
      if (cmp(a, b) != 0 || restorable(k.type, a, b)) continue;
      if (k.type == KCMP_VM && syscall(SYS_kcmp, a, b, KCMP_SIGHAND, 0, 0) == 0) {
        return absl::UnimplementedError(absl::StrFormat(
            "pid %d and pid %d share their memory (CLONE_VM) and their signal handlers "
            "(CLONE_SIGHAND), as threads do, but are two processes: not supported",
            a, b));
      }
      return absl::UnimplementedError(
          absl::StrFormat("pid %d and pid %d share %s: not supported", a, b, k.what));
    }
  }
  return absl::OkStatus();
}

absl::Status WritePstree(const DumpContext& ctx) {
  auto w = images::TypedImageWriter<criu::pstree_entry>::Create(ctx.images_dir + "/pstree.img",
                                                                images::Pstree());
  if (!w.ok()) return w.status();
  for (const TreeTask& t : ctx.tree) {
    criu::pstree_entry e;
    e.set_pid(t.pid);
    e.set_ppid(t.ppid);
    e.set_pgid(t.stat->pgid);
    e.set_sid(t.stat->sid);
    if (!t.zombie()) {
      e.add_threads(t.pid);
      for (const ptrace::Task* th : t.threads) e.add_threads(th->tid());
    }
    if (auto s = w->Write(e); !s.ok()) return s;
  }
  return w->Close();
}

// setpgid(0, pgid) for a group another task of the tree leads: that task may
// have been forked just before this one and not have created its group yet.
absl::Status JoinGroup(pid_t pid, pid_t pgid) {
  for (int i = 0; i < 500; ++i) {
    if (setpgid(0, pgid) == 0) return absl::OkStatus();
    if (errno != EPERM) break;
    usleep(2000);
  }
  return absl::InternalError(
      absl::StrFormat("pid %d: joining process group %d: %s", pid, pgid, strerror(errno)));
}

}  // namespace

absl::Status Tree::Precheck(DumpContext& ctx) {
  pid_t pid = ctx.pid;
  if (ctx.zombie) {
    if (pid == ctx.root_pid) {
      return absl::FailedPreconditionError(absl::StrFormat("pid %d is a zombie", pid));
    }
    // A main thread that ended (pthread_exit) while the others run looks
    // like a zombie, but the process lives on.
    if (ctx.stat->num_threads > 1) {
      return absl::UnimplementedError(absl::StrFormat(
          "pid %d: its main thread has exited while %d other threads run: not supported", pid,
          ctx.stat->num_threads - 1));
    }
    return absl::OkStatus();
  }
  if (auto s = CheckNothingShared(ctx); !s.ok()) return s;
  if (pid != ctx.root_pid) return CheckChildIds(ctx);
  // The root's session and group must be its own, or (--shell-job) those of
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
  if (ctx.pid == ctx.root_pid) {
    if (ctx.tree.empty()) {
      return absl::FailedPreconditionError("tree: the dump driver gave no task list");
    }
    if (auto s = WritePstree(ctx); !s.ok()) return s;
  }
  if (ctx.zombie) return absl::OkStatus();  // CRIU keeps no ids for zombies
  auto ids = images::TypedImageWriter<criu::task_kobj_ids_entry>::Create(
      absl::StrFormat("%s/ids-%d.img", ctx.images_dir, ctx.pid), images::Ids());
  if (!ids.ok()) return ids.status();
  // A task list without the task (plugin tests): nothing shared.
  const TreeTask* me = Find(ctx, ctx.pid);
  TreeTask alone;
  alone.pid = ctx.pid;
  alone.id = ctx.task_id;
  if (auto s = ids->Write(Ids(ctx, me != nullptr ? *me : alone)); !s.ok()) return s;
  return ids->Close();
}

absl::Status Tree::Restore(RestoreContext& ctx) {
  std::string path = ctx.images_dir + "/pstree.img";
  auto tree = images::ReadAll<criu::pstree_entry>(path, images::Pstree());
  if (!tree.ok()) return tree.status();
  std::map<pid_t, const criu::pstree_entry*> by_pid;
  for (const auto& e : *tree) by_pid[static_cast<pid_t>(e.pid())] = &e;
  pid_t pid = getpid();
  auto it = by_pid.find(pid);
  if (pid != ctx.pid || it == by_pid.end()) {
    return absl::InternalError(
        absl::StrFormat("restoring pid %d but running as pid %d", ctx.pid, pid));
  }
  const criu::pstree_entry& e = *it->second;
  pid_t sid = static_cast<pid_t>(e.sid()), pgid = static_cast<pid_t>(e.pgid());
  if (pid == ctx.root_pid) {
    // A shell job joins the restoring shell's session (and takes a group of
    // its own when it led one); otherwise the root leads its own session.
    if (ctx.shell_job) {
      if (pgid == pid && setpgid(0, 0) != 0) {
        return absl::InternalError(absl::StrFormat("pid %d: setpgid: %s", pid, strerror(errno)));
      }
    } else if (sid == pid && setsid() < 0) {
      return absl::InternalError(absl::StrFormat("pid %d: setsid: %s", pid, strerror(errno)));
    }
  } else if (sid == pid) {
    if (setsid() < 0) {
      return absl::InternalError(absl::StrFormat("pid %d: setsid: %s", pid, strerror(errno)));
    }
  } else if (pgid == pid) {
    if (setpgid(0, 0) != 0) {
      return absl::InternalError(absl::StrFormat("pid %d: setpgid: %s", pid, strerror(errno)));
    }
  } else if (by_pid.count(pgid) && getpgid(0) != pgid) {
    if (auto s = JoinGroup(pid, pgid); !s.ok()) return s;
  }
  log::Info("tree: pid %d (pgid %d, sid %d)", pid, getpgid(0), getsid(0));
  return absl::OkStatus();
}

}  // namespace crpp::resources
