// pdum-criu shell beam on real processes: a goblin beamed onto new pipes
// (beam's own stdio) answers with its count going on; detached, its images
// directory goes once it exits (--cleanup: the watcher); in the foreground
// with --no-cleanup, beam exits with its code and the images stay (in a
// temporary directory of beam's own); what beam cannot do is refused
// before anything is frozen.
#define BOOST_TEST_MODULE pdum_beam
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/tools/pdum/pdum_testing.h"

namespace crpp::pdum_test {
namespace {

BOOST_GLOBAL_FIXTURE(Reaper);

std::string Pid(pid_t pid) { return std::to_string(pid); }

// The number after `prefix` in `text` ("watcher pid 123)" -> 123), or -1.
pid_t NumberAfter(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  return at == std::string::npos ? -1 : atoi(text.c_str() + at + prefix.size());
}

BOOST_AUTO_TEST_CASE(goblin_beamed_detached_and_its_images_removed_when_it_exits) {
  const std::string dir = FreshPath("beam-cleanup");
  Goblin g;
  BOOST_REQUIRE(g.Start());
  Pipe in, out, err;
  pid_t beam = Spawn({PdumBinary(), "shell", "beam", "--dir", dir, "--pid", Pid(g.pid), "--detach",
                      "--pidfile", dir + "/beamed.pid"},
                     in.r, out.w, err.w, false);
  in.CloseRead(), out.CloseWrite(), err.CloseWrite();
  // The freeze kills the goblin; its pid is free once we reap it.
  auto gone = WaitFor(g.pid, 10000);
  BOOST_REQUIRE(gone.has_value());
  auto status = WaitFor(beam, 15000);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "shell beam --detach did not return");
  BOOST_TEST((WIFEXITED(*status) && WEXITSTATUS(*status) == 0));
  std::string said;
  BOOST_TEST(ReadLineStartingWith(out.r, "Beam complete.", &said)
                 .starts_with("Beam complete. Restore log: " + dir + "/restore."),
             said);
  BOOST_TEST(Contains(said, "Freezing PID " + Pid(g.pid)), said);
  BOOST_TEST(Contains(said, "The job is gone (--no-leave-running)"), said);
  BOOST_TEST(Contains(said, "Thawed: pid " + Pid(g.pid) + " (detached"), said);
  BOOST_TEST(Contains(said, "Cleanup: " + dir + " goes once pid " + Pid(g.pid) + " exits"), said);
  const pid_t watcher = NumberAfter(said, "(watcher pid ");
  BOOST_TEST(watcher > 0);

  // beam's stdio were the new pipes: the goblin answers on them.
  WriteLine(in.w, "beamed");
  BOOST_TEST(ReadLine(out.r) == Answer("beamed", 2));
  BOOST_TEST(ReadLine(err.r) == "count 2");
  BOOST_TEST(Exists(dir + "/pstree.img"));
  BOOST_TEST(ReadFile(dir + "/beamed.pid").starts_with(Pid(g.pid)));
  usleep(300000);
  BOOST_TEST(Exists(dir), "the images went before the job ended");

  in.CloseWrite();                    // end of input: the goblin exits
  auto ended = WaitFor(g.pid, 5000);  // detached: it came to us, the subreaper
  BOOST_REQUIRE(ended.has_value());
  BOOST_TEST((WIFEXITED(*ended) && WEXITSTATUS(*ended) == 0));
  bool removed = false;
  for (int i = 0; i < 500 && !(removed = !Exists(dir)); ++i) usleep(10000);
  BOOST_TEST(removed, dir << " is still there after the job exited");
  auto watcher_done = WaitFor(watcher, 5000);
  BOOST_REQUIRE_MESSAGE(watcher_done.has_value(), "the cleanup watcher runs on");
  BOOST_TEST((WIFEXITED(*watcher_done) && WEXITSTATUS(*watcher_done) == 0));
}

BOOST_AUTO_TEST_CASE(goblin_beamed_in_the_foreground_keeps_its_images_without_cleanup) {
  const std::string name = "pdum-goblin-" + Pid(getpid()) + "-beam";
  Goblin g;
  BOOST_REQUIRE(g.Start(name));
  BOOST_TEST(g.Talk("before", 2) == "");
  // No --dir: beam makes a temporary one under $TMPDIR.
  const std::string tmp = FreshPath("beam-tmp");
  std::filesystem::create_directories(tmp);
  Pipe in, out, err;
  pid_t beam = Spawn({"/usr/bin/env", "TMPDIR=" + tmp, PdumBinary(), "shell", "beam", "--pgrep",
                      "^" + name + "$", "--no-cleanup", "--hide-command"},
                     in.r, out.w, err.w, false);
  in.CloseRead(), out.CloseWrite(), err.CloseWrite();
  BOOST_REQUIRE(WaitFor(g.pid, 10000).has_value());
  std::string said;
  const std::string dir_line = ReadLineStartingWith(out.r, "Beam images directory: ", &said, 15000);
  const std::string dir = dir_line.substr(std::string("Beam images directory: ").size());
  BOOST_TEST(dir.starts_with(tmp + "/pdum-criu-beam-"), dir_line);
  BOOST_TEST(ReadLineStartingWith(out.r, "Beam complete.", &said, 15000) != "(no answer)", said);
  BOOST_TEST(!Contains(said, "Cleanup:"), said);
  BOOST_TEST(!Contains(said, "$ criu"), said);
  WriteLine(in.w, "here now");
  BOOST_TEST(ReadLine(out.r) == Answer("here now", 3));
  BOOST_TEST(ReadLine(err.r) == "count 3");
  // beam waits for the job and exits with its code.
  BOOST_TEST(!WaitFor(beam, 200).has_value());
  in.CloseWrite();
  auto status = WaitFor(beam, 10000);
  BOOST_REQUIRE(status.has_value());
  BOOST_TEST((WIFEXITED(*status) && WEXITSTATUS(*status) == 0));
  BOOST_TEST(Contains(ReadToEnd(out.r), "pid " + Pid(g.pid) + " exited with status 0"));
  usleep(300000);
  BOOST_TEST(Exists(dir + "/pstree.img"), "--no-cleanup removed " << dir);
}

BOOST_AUTO_TEST_CASE(what_beam_cannot_do_is_refused_before_freezing) {
  const std::string dir = FreshPath("beam-refused");
  Goblin g;
  BOOST_REQUIRE(g.Start());
  Ran running = RunPdum({"shell", "beam", "--dir", dir, "--pid", Pid(g.pid), "--leave-running"});
  BOOST_TEST(running.exit_code() == 2, running.all());
  BOOST_TEST(Contains(running.err, "takes the pid of the frozen one"), running.err);
  // A file to stand for its stdin that is not there: known before the freeze ends the job.
  Ran missing = RunPdum(
      {"shell", "beam", "--dir", dir, "--pid", Pid(g.pid), "--stdin", dir + "/no-such-fifo"});
  BOOST_TEST(missing.exit_code() == 1, missing.all());
  BOOST_TEST(Contains(missing.err, "--stdin " + dir + "/no-such-fifo"), missing.err);
  BOOST_TEST(Contains(missing.err, "nothing was frozen; the job runs on"), missing.err);
  BOOST_TEST(!Exists(dir));
  // --cleanup removes the whole directory: not one holding files already.
  std::filesystem::create_directories(dir);
  { std::ofstream(dir + "/precious.txt") << "keep me\n"; }
  Ran full = RunPdum({"shell", "beam", "--dir", dir, "--pid", Pid(g.pid)});
  BOOST_TEST(full.exit_code() == 2, full.all());
  BOOST_TEST(Contains(full.err, "is not empty: name a new directory, or pass --no-cleanup"),
             full.err);
  BOOST_TEST(ReadFile(dir + "/precious.txt") == "keep me\n");
  BOOST_TEST(!Exists(dir + "/pstree.img"));
  BOOST_TEST(g.Talk("untouched", 2) == "");
  KillAndReap(g.pid);
}

}  // namespace
}  // namespace crpp::pdum_test
