// ReadTree (restore_task.h): the tree to restore and what its tasks share.
#include <map>

#include "absl/strings/str_format.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/restore/restore_task.h"
#include "pstree.pb.h"
#include "resources/task/core.h"
#include "restorer/restorer_args.h"

namespace crpp::restore_internal {

absl::StatusOr<std::vector<TaskSpec>> ReadTree(const std::string& dir) {
  std::string path = dir + "/pstree.img";
  auto entries = images::ReadAll<criu::pstree_entry>(path, images::Pstree());
  if (!entries.ok()) return entries.status();
  if (entries->empty()) return absl::DataLossError(path + ": no task");
  std::vector<TaskSpec> tasks;
  std::map<pid_t, size_t> index;
  for (const auto& e : *entries) {
    TaskSpec t;
    t.pid = static_cast<pid_t>(e.pid());
    t.ppid = static_cast<pid_t>(e.ppid());
    t.pgid = static_cast<pid_t>(e.pgid());
    t.sid = static_cast<pid_t>(e.sid());
    t.zombie = e.threads_size() == 0;
    if (t.pid <= 0 || index.count(t.pid)) {
      return absl::DataLossError(absl::StrFormat("%s: bad or repeated pid %d", path, t.pid));
    }
    if (tasks.empty() ? t.ppid != 0 && index.count(t.ppid) : !index.count(t.ppid)) {
      return absl::DataLossError(absl::StrFormat(
          "%s: pid %d comes before its parent %d (or the parent is missing)", path, t.pid, t.ppid));
    }
    if (tasks.empty() && t.zombie) {
      return absl::DataLossError(absl::StrFormat("%s: the root task %d is a zombie", path, t.pid));
    }
    if (!t.zombie && e.threads(0) != e.pid()) {
      return absl::DataLossError(absl::StrFormat("%s: pid %d's first thread is %d, not the process",
                                                 path, t.pid, e.threads(0)));
    }
    if (e.threads_size() > RESTORER_MAX_THREADS + 1) {
      return absl::UnimplementedError(
          absl::StrFormat("%s: pid %d has %d threads, more than the %d supported", path, t.pid,
                          e.threads_size(), RESTORER_MAX_THREADS + 1));
    }
    for (int i = 1; i < e.threads_size(); ++i) {
      t.threads.push_back(static_cast<pid_t>(e.threads(i)));
    }
    if (t.zombie) {
      auto core = images::ReadAll<criu::core_entry>(absl::StrFormat("%s/core-%d.img", dir, t.pid),
                                                    images::Core());
      if (!core.ok()) return core.status();
      if (core->size() != 1 || !core->front().has_tc() ||
          core->front().tc().task_state() != resources::kTaskDead) {
        return absl::DataLossError(absl::StrFormat(
            "%s/core-%d.img: the zombie's core has no dead task state", dir, t.pid));
      }
      t.exit_code = static_cast<int>(core->front().tc().exit_code());
    }
    index[t.pid] = tasks.size();
    tasks.push_back(t);
  }
  // Which tasks share their parent's fs (cwd, root, umask) or fd table: the
  // same fs_id or files_id as the parent.
  std::map<pid_t, criu::task_kobj_ids_entry> ids;
  for (const TaskSpec& t : tasks) {
    if (t.zombie) continue;
    auto read = images::ReadAll<criu::task_kobj_ids_entry>(
        absl::StrFormat("%s/ids-%d.img", dir, t.pid), images::Ids());
    if (!read.ok()) return read.status();
    if (read->size() != 1) {
      return absl::DataLossError(absl::StrFormat("%s/ids-%d.img: expected one entry", dir, t.pid));
    }
    ids[t.pid] = read->front();
  }
  std::map<uint32_t, size_t> last_in_table;  // files_id -> the last task using it so far
  for (size_t i = 0; i < tasks.size(); ++i) {
    TaskSpec& t = tasks[i];
    t.table_owner = i;
    auto mine = ids.find(t.pid), parents = ids.find(t.ppid);
    if (mine == ids.end()) continue;
    const bool with_parent = parents != ids.end();
    t.shares_parent_fs = with_parent && mine->second.fs_id() == parents->second.fs_id();
    t.shares_parent_files = with_parent && mine->second.files_id() == parents->second.files_id();
    const uint32_t table = mine->second.files_id();
    auto before = last_in_table.find(table);
    if (before != last_in_table.end()) {
      // Only a chain of CLONE_FILES children is forked sharing one table.
      if (!t.shares_parent_files) {
        return absl::UnimplementedError(absl::StrFormat(
            "pid %d uses fd table %d, as pid %d does, but not its parent's (%d): processes "
            "sharing an fd table other than a child with its parent are not supported",
            t.pid, table, tasks[before->second].pid, t.ppid));
      }
      t.table_owner = tasks[before->second].table_owner;
      tasks[before->second].next_in_table = static_cast<int>(i);
    }
    last_in_table[table] = i;
  }
  return tasks;
}

}  // namespace crpp::restore_internal
