#include "tests/e2e/restore_failure.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace crpp::e2e {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  BOOST_REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

namespace {

// "state 'S'" or "gone", and its parent, for messages.
std::string Describe(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  return stat.empty() ? absl::StrCat("pid ", pid, " gone")
                      : absl::StrCat("/proc/", pid, "/stat: ", stat);
}

}  // namespace

// Runs `criu restore -D DIR -d` and requires it to fail as described above;
// PID is the task it would restore.
void RequireRestoreFails(Session& s, const std::string& dir, pid_t pid, const Expected& e) {
  const std::string pidfile = e.pidfile.empty() ? dir + "/pid" : e.pidfile;
  std::vector<std::string> args = {"restore", "-D", dir, "-d", "--pidfile", pidfile, "-v4"};
  if (!e.log.empty()) args.insert(args.end(), {"-o", e.log});
  absl::StatusOr<Session::CriuRun> run = s.RunCriuAnyway("restore-damaged", args);
  E2E_REQUIRE_OK(s, run.status());
  std::cout << s.dir() << ": criu restore -D " << dir << ": "
            << DescribeWaitStatus(run->wait_status) << ": " << run->output;
  BOOST_CHECK_MESSAGE(WIFEXITED(run->wait_status) && WEXITSTATUS(run->wait_status) == 1,
                      "criu restore ended with " << DescribeWaitStatus(run->wait_status)
                                                 << ", want exit 1\n"
                                                 << run->output);
  // With -o, a summary line on stderr; without, the log itself is stderr.
  BOOST_CHECK_MESSAGE(
      absl::StrContains(run->output, e.log.empty() ? "Error: restore: " : "Error (restore): "),
      "no error on stderr: " << run->output);
  const std::string log = e.log.empty() ? "" : ReadFile(dir + "/" + e.log);
  for (const std::string& w : e.wanted) {
    BOOST_CHECK_MESSAGE(absl::StrContains(run->output, w),
                        "'" << w << "' not in criu's output: " << run->output);
    if (!e.log.empty()) {
      BOOST_CHECK_MESSAGE(absl::StrContains(log, w), "'" << w << "' not in " << dir << "/" << e.log
                                                         << ":\n"
                                                         << log);
    }
  }
  // Nothing half-restored survives: not under the pid, not as our child.
  const bool pid_allowed = std::find(e.allowed_children.begin(), e.allowed_children.end(), pid) !=
                           e.allowed_children.end();
  if (!pid_allowed) {
    BOOST_CHECK_MESSAGE(!Exists(absl::StrCat("/proc/", pid)),
                        "a process with pid " << pid << " remains: " << Describe(pid));
  }
  for (pid_t child : Children()) {
    const bool allowed = std::find(e.allowed_children.begin(), e.allowed_children.end(), child) !=
                         e.allowed_children.end();
    BOOST_CHECK_MESSAGE(allowed, "left behind as our child: " << Describe(child));
  }
  BOOST_CHECK_MESSAGE(!Exists(pidfile),
                      "the pidfile " << pidfile << " was written: " << ReadFile(pidfile));
}

// Restores the intact images of the last dump; the program runs and its
// verdict is OK.
void RequireRestoreWorks(Session& s) {
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, s.Verdict());
  std::cout << s.dir() << ": restored from the intact images: " << s.last_verdict() << std::endl;
}

// Starts PROGRAM, dumps it, requires that the restore of a copy of the
// images with DAMAGE done fails, then that the intact ones restore (after
// REPAIR, for damage outside the images).
void DamagedImages(const std::string& name, const std::string& program, const Damage& damage,
                   const std::function<void()>& repair) {
  Session s(name, program);
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, s.Dump());
  const pid_t pid = s.pid();
  const std::string damaged = s.dir() + "/damaged";
  std::error_code ec;
  std::filesystem::copy(s.ImagesDir(s.dumps()), damaged, std::filesystem::copy_options::recursive,
                        ec);
  BOOST_REQUIRE_MESSAGE(!ec, "copying the images: " << ec.message());
  const Expected expected = damage(damaged, pid);
  RequireRestoreFails(s, damaged, pid, expected);
  if (repair) repair();
  RequireRestoreWorks(s);
}

std::string Image(const std::string& dir, const std::string& kind, pid_t pid) {
  return absl::StrCat(dir, "/", kind, "-", pid, ".img");
}

}  // namespace crpp::e2e
