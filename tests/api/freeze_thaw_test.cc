// The library interface (api/criu.h) through its example program,
// examples/goblin_jobs: a goblin (stdin, stdout and stderr on pipes) is
// frozen (and killed) with Freeze, thawed with Thaw on new pipes the program
// owns, fed more lines and answers with its count going on; once, ten times
// in a row, and thawed as no child of the program's (detach). The program's
// own resource plugin shows that its Dump and Restore hooks ran. Without the
// capabilities, Freeze says which ones are missing and how to get them.
#define BOOST_TEST_MODULE freeze_thaw
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace {

struct Ran {
  int status = -1;
  std::string output;
};

// Runs the example with `args` (stdout and stderr captured); in the child,
// `before_exec` runs first.
Ran RunExample(const std::vector<std::string>& args, void (*before_exec)() = nullptr) {
  static int n = 0;
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/run-" + std::to_string(++n);
  std::filesystem::create_directories(dir);
  std::vector<std::string> argv = {crpp::e2e::Runfile("examples/goblin_jobs/goblin_jobs"),
                                   crpp::e2e::Runfile("tests/e2e/programs/goblin"), dir};
  argv.insert(argv.end(), args.begin(), args.end());
  int out[2];
  BOOST_REQUIRE(pipe(out) == 0);
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    if (before_exec) before_exec();
    std::vector<char*> c;
    for (const std::string& a : argv) c.push_back(const_cast<char*>(a.c_str()));
    c.push_back(nullptr);
    execv(c[0], c.data());
    _exit(127);
  }
  close(out[1]);
  Ran r;
  char buf[4096];
  for (ssize_t got; (got = read(out[0], buf, sizeof buf)) > 0;) r.output.append(buf, got);
  close(out[0]);
  waitpid(pid, &r.status, 0);
  BOOST_TEST_MESSAGE(r.output);
  return r;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

BOOST_AUTO_TEST_CASE(goblin_frozen_and_thawed_on_new_pipes) {
  Ran r = RunExample({"1"});
  BOOST_TEST(r.status == 0, r.output);
  BOOST_TEST(Contains(r.output, "count 2, example resource: dumped and restored"), r.output);
  BOOST_TEST(Contains(r.output, "OK 1 cycles"), r.output);
}

BOOST_AUTO_TEST_CASE(ten_freeze_thaw_cycles) {
  Ran r = RunExample({"10"});
  BOOST_TEST(r.status == 0, r.output);
  BOOST_TEST(Contains(r.output, "cycle 10: "), r.output);
  BOOST_TEST(Contains(r.output, "count 11, example resource: dumped and restored"), r.output);
  BOOST_TEST(Contains(r.output, "OK 10 cycles"), r.output);
}

BOOST_AUTO_TEST_CASE(thawed_as_no_child_of_the_caller) {
  Ran r = RunExample({"2", "--detach"});
  BOOST_TEST(r.status == 0, r.output);
  BOOST_TEST(Contains(r.output, "OK 2 cycles"), r.output);
}

void DropCheckpointCaps() {
  // Out of the bounding set, so that even root does not get them at exec.
  prctl(PR_CAPBSET_DROP, CAP_CHECKPOINT_RESTORE, 0, 0, 0);
  prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0);
}

BOOST_AUTO_TEST_CASE(a_missing_capability_is_named) {
  Ran r = RunExample({"1"}, DropCheckpointCaps);
  BOOST_TEST(WIFEXITED(r.status));
  BOOST_TEST(WEXITSTATUS(r.status) == 1, r.output);
  BOOST_TEST(
      Contains(r.output, "FAIL Freeze: Freeze needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN)"),
      r.output);
  BOOST_TEST(Contains(r.output, "setcap"), r.output);
}

}  // namespace
