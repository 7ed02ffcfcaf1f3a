// What the restore-failure tests share (restore_failures_test.cc for one
// task, restore_failures_tree_test.cc for trees and what their tasks share):
// a failed restore must exit with status 1 and an error, on stderr and in
// restore.log, that names the file or resource and the reason; no process
// with the pid may remain (alive or a zombie), no child of ours is left
// behind, and no pidfile claims a task. Then the intact images restore and
// the program's verdict is OK: nothing but the damage was in the way.
#ifndef CRPP_TESTS_E2E_RESTORE_FAILURE_H_
#define CRPP_TESTS_E2E_RESTORE_FAILURE_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace crpp::e2e {

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& data);
bool Exists(const std::string& path);

struct Expected {
  // Each must be in criu's error output and in restore.log.
  std::vector<std::string> wanted;
  // Children of ours that may exist (the original of a dump -R).
  std::vector<pid_t> allowed_children;
  // Where the log goes ("" = stderr: the images directory may not exist).
  std::string log = "restore.log";
  // --pidfile (default: DIR/pid).
  std::string pidfile;
};

// Runs `criu restore -D DIR -d` and requires it to fail as described above;
// PID is the task it would restore.
void RequireRestoreFails(Session& s, const std::string& dir, pid_t pid, const Expected& e);

// Restores the intact images of the last dump; the program runs and its
// verdict is OK.
void RequireRestoreWorks(Session& s);

// Damages a copy of the images of one dump.
using Damage = std::function<Expected(const std::string& dir, pid_t pid)>;

// Starts PROGRAM, dumps it, requires that the restore of a copy of the
// images with DAMAGE done fails, then that the intact ones restore (after
// REPAIR, for damage outside the images).
void DamagedImages(const std::string& name, const std::string& program, const Damage& damage,
                   const std::function<void()>& repair = nullptr);

// DIR/KIND-PID.img
std::string Image(const std::string& dir, const std::string& kind, pid_t pid);

}  // namespace crpp::e2e

#endif  // CRPP_TESTS_E2E_RESTORE_FAILURE_H_
