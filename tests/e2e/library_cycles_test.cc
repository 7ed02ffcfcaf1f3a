// The engine as a library, 20 dump+restore cycles in one process: the
// process tree (the pipeline program: three processes, pipes with data in
// flight) comes back every time, and the engine leaks nothing it keeps: no
// fd, no child left a zombie, no memory growing with the cycles.
#define BOOST_TEST_MODULE library_cycles
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "core/dump/dump.h"
#include "core/restore/restore.h"
#include "tests/e2e/harness.h"

namespace {

int OwnFds() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n += !e.is_directory();
  return n;
}

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Waits (up to 5 s) until PATH holds WHAT.
bool WaitFor(const std::string& path, const std::string& what) {
  for (int i = 0; i < 500; ++i) {
    if (Read(path).find(what) != std::string::npos) return true;
    usleep(10000);
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(twenty_cycles_in_one_process) {
  // The dumped tree's processes come to us when their root dies: collected
  // below, so that their pids are free for the restore.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/library_cycles";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/out");
  const std::string program = crpp::e2e::Runfile("tests/e2e/programs/pipeline");
  pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    setsid();
    execl(program.c_str(), program.c_str(), (dir + "/out").c_str(), nullptr);
    _exit(127);
  }
  BOOST_REQUIRE(WaitFor(dir + "/out/report", "ready"));

  int fds_before = 0;
  long rss_before = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string images = dir + "/images-" + std::to_string(i);
    std::filesystem::create_directories(images);
    crpp::DumpRequest d;
    d.pid = pid;
    d.images_dir = images;
    auto stats = crpp::Dump(d);
    BOOST_REQUIRE_MESSAGE(stats.ok(), "cycle " << i << ": " << stats.status());
    // The whole tree is gone before its pids are taken again.
    for (int waited = 0; waited < 5000; waited += 5) {
      while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
      }
      if (kill(pid, 0) != 0 && Read("/proc/" + std::to_string(pid) + "/stat").empty()) break;
      usleep(5000);
    }
    crpp::RestoreRequest r;
    r.images_dir = images;
    auto restored = crpp::Restore(r);
    BOOST_REQUIRE_MESSAGE(restored.ok(), "cycle " << i << ": " << restored.status());
    BOOST_REQUIRE_EQUAL(restored->pid, pid);
    std::filesystem::remove_all(images);
    // Measured from the third cycle on: the first ones fill caches (the
    // kernel feature probes, protobuf descriptors) once for the process.
    if (i == 2) fds_before = OwnFds(), rss_before = RssKb();
  }
  const int fds_after = OwnFds();
  const long rss_after = RssKb();
  BOOST_TEST(fds_after == fds_before);
  std::cout << "engine: " << fds_after << " fds, RSS " << rss_before << " kB after 3 cycles, "
            << rss_after << " kB after 20" << std::endl;
  BOOST_TEST(rss_after - rss_before < 8 * 1024,
             "engine RSS grew from " << rss_before << " to " << rss_after << " kB");
  // No zombie of ours: every child but the restored root is collected.
  int zombies = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;  // not a process
    const std::string stat = Read(e.path().string() + "/stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 4 >= stat.size()) continue;
    if (stat[paren + 2] == 'Z' && std::atoi(stat.c_str() + paren + 4) == getpid()) ++zombies;
  }
  BOOST_TEST(zombies == 0);

  // The pipeline still works: its verdict after the 20th restore.
  kill(pid, SIGUSR1);
  BOOST_TEST(WaitFor(dir + "/out/report", "OK"), Read(dir + "/out/report"));
  int st = 0;
  waitpid(pid, &st, 0);
  while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
  }
}
