// pdum-criu's commands that freeze nothing, or must not: doctor on this
// machine (all ✓) and with capabilities taken away (the ✗ line, its hint,
// a non-zero exit; a freeze then says what is missing), --pgrep matching
// no process or several (refused, listing them, nothing frozen), usage
// errors, version and help.
#define BOOST_TEST_MODULE pdum_cli
#include <linux/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/tools/pdum/pdum_testing.h"

namespace crpp::pdum_test {
namespace {

BOOST_GLOBAL_FIXTURE(Reaper);

std::string Pid(pid_t pid) { return std::to_string(pid); }

BOOST_AUTO_TEST_CASE(doctor_passes_on_this_machine) {
  Ran r = RunPdum({"doctor"});
  BOOST_TEST_MESSAGE(r.all());
  BOOST_TEST(r.exit_code() == 0, r.all());
  BOOST_TEST(!Contains(r.out, "✗"), r.out);
  BOOST_TEST(Contains(r.out, "✓ CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN: "));
  BOOST_TEST(Contains(r.out, "✓ CAP_SYS_PTRACE: CAP_SYS_PTRACE in the effective set"));
  // The kernel probes of `criu check`, pidfds, the settings and the binary.
  for (const char* line : {"✓ map_files:", "✓ ptrace_seize:", "✓ clone3_set_tid:", "✓ vdso:",
                           "✓ pidfd_store:", "✓ ns_last_pid:", "✓ ptrace scope:", "✓ pdum-criu:"}) {
    BOOST_TEST(Contains(r.out, line), line);
  }
  BOOST_TEST(Contains(r.out, "All doctor checks passed!"));
}

// Out of the bounding set before exec: even root does not get them back.
void DropCheckpointCaps() {
  prctl(PR_CAPBSET_DROP, CAP_CHECKPOINT_RESTORE, 0, 0, 0);
  prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0);
}

BOOST_AUTO_TEST_CASE(doctor_names_a_missing_capability_and_how_to_get_it) {
  Ran r = RunPdum({"doctor"}, DropCheckpointCaps);
  BOOST_TEST_MESSAGE(r.all());
  BOOST_TEST(r.exit_code() == 1, r.all());
  BOOST_TEST(Contains(r.out,
                      "✗ CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN: not in this process's "
                      "bounding set\n    hint: whatever started pdum-criu dropped it"),
             r.out);
  BOOST_TEST(Contains(r.out, "docker run --cap-add=CHECKPOINT_RESTORE"), r.out);
  BOOST_TEST(Contains(r.out, "✓ CAP_SYS_PTRACE"), r.out);
  BOOST_TEST(Contains(r.out, "Resolve the failed checks above before continuing."), r.out);
  BOOST_TEST(!Contains(r.out, "All doctor checks passed!"), r.out);

  // A freeze then stops at the library's check, naming what is missing.
  Goblin g;
  BOOST_REQUIRE(g.Start());
  const std::string dir = FreshPath("no-caps");
  Ran f = RunPdum({"shell", "freeze", "--dir", dir, "--pid", Pid(g.pid)}, DropCheckpointCaps);
  BOOST_TEST(f.exit_code() == 1, f.all());
  BOOST_TEST(Contains(f.err,
                      "Freeze failed (exit 1): Freeze needs CAP_CHECKPOINT_RESTORE (or "
                      "CAP_SYS_ADMIN)"),
             f.err);
  BOOST_TEST(Contains(f.err, "Hint: pdum-criu doctor lists what this process lacks."), f.err);
  BOOST_TEST(g.Talk("untouched", 2) == "");
  KillAndReap(g.pid);
}

BOOST_AUTO_TEST_CASE(pgrep_matching_no_process_or_several_is_refused) {
  const std::string dir = FreshPath("pgrep");
  const std::string none = "^pdum-nobody-" + Pid(getpid()) + "$";
  Ran r = RunPdum({"shell", "freeze", "--dir", dir, "--pgrep", none});
  BOOST_TEST(r.exit_code() == 1, r.all());
  BOOST_TEST(Contains(r.err, "No process matches --pgrep '" + none + "'."), r.err);

  const std::string twin = "pdum-twin-" + Pid(getpid());
  Goblin a, b;
  BOOST_REQUIRE(a.Start(twin));
  BOOST_REQUIRE(b.Start(twin));
  r = RunPdum({"shell", "freeze", "--dir", dir, "--pgrep", twin, "--no-leave-running"});
  BOOST_TEST(r.exit_code() == 1, r.all());
  BOOST_TEST(Contains(r.err, "--pgrep '" + twin + "' matches 2 processes; name one with --pid"),
             r.err);
  BOOST_TEST(Contains(r.err, Pid(a.pid) + "  " + twin), r.err);
  BOOST_TEST(Contains(r.err, Pid(b.pid) + "  " + twin), r.err);
  // pdum-criu's own command line holds the pattern: it never matches itself.
  BOOST_TEST(!Contains(r.err, "shell freeze"), r.err);
  r = RunPdum({"shell", "beam", "--dir", dir, "--pgrep", twin});
  BOOST_TEST(r.exit_code() == 1, r.all());
  BOOST_TEST(Contains(r.err, "matches 2 processes"), r.err);
  BOOST_TEST(!Exists(dir + "/pstree.img"));
  BOOST_TEST(a.Talk("still here", 2) == "");
  BOOST_TEST(b.Talk("me too", 2) == "");
  r = RunPdum({"shell", "freeze", "--dir", dir, "--pgrep", "(unclosed"});
  BOOST_TEST(r.exit_code() == 2, r.all());
  BOOST_TEST(Contains(r.err, "is not a valid regular expression"), r.err);
  KillAndReap(a.pid);
  KillAndReap(b.pid);
}

BOOST_AUTO_TEST_CASE(usage_errors_version_and_help) {
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;
  };
  const Case cases[] = {
      {{"shell", "freeze", "--pid", "1"}, 2, "Missing option '--dir' / '-d'."},
      {{"shell", "freeze", "-d", "/tmp/x"}, 2, "Either --pid or --pgrep is required."},
      {{"shell", "freeze", "-d", "/tmp/x", "--pid", "1", "--pgrep", "x"},
       2,
       "Specify either --pid or --pgrep, not both."},
      {{"shell", "freeze", "-d", "/tmp/x", "--pid", "zero"}, 2, "a PID must be a positive"},
      {{"shell", "freeze", "-d", "/tmp/x", "--pid", "1", "-v", "7"}, 2, "from 0 to 4"},
      {{"shell", "freeze", "--bogus"}, 2, "no such option: --bogus"},
      {{"shell", "thaw"}, 2, "Missing option '--dir' / '-d'."},
      {{"shell", "thaw", "--dir", "/nonexistent/images"},
       1,
       "Image directory does not exist: /nonexistent/images"},
      {{"shell", "frobnicate"}, 2, "No such command 'shell frobnicate'."},
      {{"frobnicate"}, 2, "No such command 'frobnicate'."},
      {{"version"}, 0, "pdum-criu CLI (crpp)\nversion: "},
      {{"--help"}, 0, "shell freeze"},
      {{"shell", "freeze", "--help"}, 0, "--show-command/--hide-command"},
      {{"shell", "thaw", "--help"}, 0, "--stdin FILE"},
      {{"shell", "beam", "--help"}, 0, "--cleanup/--no-cleanup"},
      {{"doctor", "--help"}, 0, "Usage: pdum-criu doctor"},
  };
  for (const Case& c : cases) {
    Ran r = RunPdum(c.args);
    BOOST_TEST(r.exit_code() == c.code, c.args.back() << ": " << r.all());
    BOOST_TEST(Contains(r.all(), c.says), c.args.back() << ": " << r.all());
  }
  // A thaw of a directory without images: criu's exit code, the file named.
  const std::string empty = FreshPath("no-images");
  std::filesystem::create_directories(empty);
  Ran r = RunPdum({"shell", "thaw", "--dir", empty});
  BOOST_TEST(r.exit_code() == 1, r.all());
  BOOST_TEST(Contains(r.err, "Thaw failed (exit 1): "), r.err);
  BOOST_TEST(Contains(r.err, empty + "/pstree.img"), r.err);
}

}  // namespace
}  // namespace crpp::pdum_test
