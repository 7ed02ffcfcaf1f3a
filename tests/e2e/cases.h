// The steps most e2e cases are made of (e2e_test.cc and the other *_cases.cc
// files of the e2e_cases library): a cycle of start, dump, restore and
// verdict, its dump -R form, and the 20-cycle stress.
#ifndef CRPP_TESTS_E2E_CASES_H_
#define CRPP_TESTS_E2E_CASES_H_

#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace crpp::e2e {

inline void PrintVerdict(const Session& s, const std::string& who) {
  std::cout << s.dir() << ": " << who << " pid " << s.pid() << ": " << s.last_verdict()
            << std::endl;
}

// Asks for the verdict; the signals program first gets its SIGUSR2.
inline void RequireVerdict(Session& s, bool send_sigusr2, const std::string& who) {
  if (send_sigusr2) {
    E2E_REQUIRE_OK(s, s.Signal(SIGUSR2));
    usleep(50 * 1000);
  }
  E2E_REQUIRE_OK(s, s.Verdict());
  PrintVerdict(s, who);
}

// The basic cycle: start, dump (the original goes), restore (same pid), the
// copy runs on, and its verdict is OK.
inline void DumpRestoreVerify(Session& s, bool send_sigusr2 = false) {
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Dump());
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, send_sigusr2, "restored");
}

// dump -R: the original runs on untouched (its own verdict is OK); once it
// has gone, a copy restored from the images works too.
inline void LeaveRunning(Session& s) {
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Dump({"-R"}));
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "original after dump -R");
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  RequireVerdict(s, false, "restored");
}

// Entries of /proc/PID/WHAT ("fd", "task") of the session's program.
inline int ProcCount(const Session& s, const char* what) {
  std::error_code ec;
  auto it =
      std::filesystem::directory_iterator("/proc/" + std::to_string(s.pid()) + "/" + what, ec);
  return ec ? -1 : static_cast<int>(std::distance(it, std::filesystem::directory_iterator()));
}

// The stress of every feature: dump and restore the started program 20 times
// in a row (with ARGS for both), then it runs with as many fds and threads as
// at the start, and its verdict is OK.
inline void Cycles(Session& s, const std::vector<std::string>& args = {}) {
  E2E_REQUIRE_OK(s, s.Start());
  const int fds_at_start = ProcCount(s, "fd"), threads_at_start = ProcCount(s, "task");
  for (int i = 0; i < 20; ++i) {
    E2E_REQUIRE_OK(s, s.Dump(args));
    E2E_REQUIRE_OK(s, s.Restore(args));
  }
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  BOOST_TEST(fds_at_start > 0);
  BOOST_TEST(ProcCount(s, "fd") == fds_at_start);
  BOOST_TEST(ProcCount(s, "task") == threads_at_start);
  RequireVerdict(s, false, "restored 20 times");
}

}  // namespace crpp::e2e

#endif  // CRPP_TESTS_E2E_CASES_H_
