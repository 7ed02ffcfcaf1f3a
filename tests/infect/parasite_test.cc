// The parasite on real programs (tests/e2e/programs, and a forked child):
// what GetTaskState() reads matches what injected syscalls and /proc say;
// after Cure() and Release() nothing of the infection is left (memory map,
// fds, signal masks and actions, and the program's own verdict on its
// registers); Infect() failing at any step, the parasite crashing included,
// leaves the task as it was; signals sent meanwhile are not lost.
#define BOOST_TEST_MODULE parasite
#include "core/infect/parasite.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/proc/proc.h"
#include "core/ptrace/task.h"
#include "tests/e2e/harness.h"
#include "tests/infect/infect_testing.h"

namespace {

using crpp::e2e::Session;
using crpp::infect::InfectStep;
using crpp::infect::Parasite;
using crpp::infect::TaskState;
using crpp::ptrace::Leave;
using crpp::ptrace::Task;
namespace it = crpp::infect::testing;

#define REQUIRE_OK(expr)                                                                   \
  do {                                                                                     \
    const ::absl::Status require_ok_status = (expr);                                       \
    BOOST_REQUIRE_MESSAGE(require_ok_status.ok(), #expr " failed: " << require_ok_status); \
  } while (0)

std::unique_ptr<Task> Seize(pid_t pid) {
  auto task = Task::Seize(pid);
  REQUIRE_OK(task.status());
  return std::move(*task);
}

std::unique_ptr<Parasite> Infect(Task& task, size_t area = Parasite::kDefaultAreaBytes) {
  auto p = Parasite::Infect(task, area);
  REQUIRE_OK(p.status());
  return std::move(*p);
}

std::string StartAndView(Session& s) {
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  auto view = it::FullView(s.pid());
  E2E_REQUIRE_OK(s, view.status());
  return *view;
}

// A signal set of /proc/PID/status ("SigCgt", ...).
uint64_t SignalSet(pid_t pid, const std::string& key) {
  auto text = crpp::proc::ReadFile(absl::StrCat("/proc/", pid, "/status"));
  BOOST_REQUIRE(text.ok());
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (!absl::ConsumePrefix(&line, key + ":")) continue;
    const std::string value(absl::StripAsciiWhitespace(line));
    char* end = nullptr;
    const uint64_t v = std::strtoull(value.c_str(), &end, 16);
    BOOST_REQUIRE(!value.empty() && *end == '\0');
    return v;
  }
  BOOST_FAIL("no " << key << " in /proc/" << pid << "/status");
  return 0;
}

template <class T>
T InjectRead(Task& t, const char* what, long nr, uint64_t a1, uint64_t a2 = 0, uint64_t a3 = 0,
             uint64_t a4 = 0) {
  auto scratch = t.MappedScratch();
  REQUIRE_OK(scratch.status());
  // The scratch address goes where the call writes its result.
  uint64_t args[4] = {a1, a2, a3, a4};
  for (uint64_t& a : args) {
    if (a == ~0ull) a = *scratch;
  }
  REQUIRE_OK(t.SyscallOk(what, nr, args[0], args[1], args[2], args[3]).status());
  T v{};
  REQUIRE_OK(t.ReadMemory(*scratch, &v, sizeof v));
  return v;
}
constexpr uint64_t kOut = ~0ull;  // "the scratch page" for InjectRead

int64_t Usec(const timeval& tv) { return tv.tv_sec * 1'000'000 + tv.tv_usec; }

// `got` (the parasite's) against injected syscalls run now, after Cure(),
// and /proc.
void CheckAgainstInjected(Task& t, const TaskState& got) {
  const pid_t pid = t.tid();
  uint64_t caught = 0, ignored = 0;
  for (int sig = 1; sig <= 64; ++sig) {
    auto want =
        InjectRead<crpp::infect::SigAction>(t, "rt_sigaction", SYS_rt_sigaction, sig, 0, kOut, 8);
    const auto& a = got.sigactions[sig - 1];
    BOOST_TEST_CONTEXT("signal " << sig) {
      BOOST_TEST(a.handler == want.handler);
      BOOST_TEST(a.flags == want.flags);
      BOOST_TEST(a.restorer == want.restorer);
      BOOST_TEST(a.mask == want.mask);
    }
    if (a.handler == reinterpret_cast<uint64_t>(SIG_IGN)) ignored |= 1ull << (sig - 1);
    if (a.handler > reinterpret_cast<uint64_t>(SIG_IGN)) caught |= 1ull << (sig - 1);
  }
  BOOST_TEST(caught == SignalSet(pid, "SigCgt"));
  BOOST_TEST(ignored == SignalSet(pid, "SigIgn"));
  for (int which = 0; which < 3; ++which) {
    auto want = InjectRead<itimerval>(t, "getitimer", SYS_getitimer, which, kOut);
    const itimerval& have = got.itimers[which];
    BOOST_TEST_CONTEXT("itimer " << which) {
      BOOST_TEST(Usec(have.it_interval) == Usec(want.it_interval));
      if (which == ITIMER_REAL && Usec(want.it_interval) > 0) {
        // Real time went on between the two reads (and the timer may have
        // fired and rearmed): both must lie within one period.
        BOOST_TEST(Usec(have.it_value) <= Usec(want.it_interval));
        BOOST_TEST(Usec(want.it_value) <= Usec(want.it_interval));
      } else {
        BOOST_TEST(Usec(have.it_value) == Usec(want.it_value));
      }
    }
  }
  for (int res = 0; res < 16; ++res) {
    auto want = InjectRead<rlimit>(t, "prlimit64", SYS_prlimit64, 0, res, 0, kOut);
    BOOST_TEST_CONTEXT("rlimit " << res) {
      BOOST_TEST(got.rlimits[res].rlim_cur == want.rlim_cur);
      BOOST_TEST(got.rlimits[res].rlim_max == want.rlim_max);
    }
  }
  auto ss = InjectRead<stack_t>(t, "sigaltstack", SYS_sigaltstack, 0, kOut);
  BOOST_TEST(got.sigaltstack.ss_sp == ss.ss_sp);
  BOOST_TEST(got.sigaltstack.ss_size == ss.ss_size);
  BOOST_TEST(got.sigaltstack.ss_flags == ss.ss_flags);
  BOOST_TEST(got.clear_tid_address ==
             InjectRead<uint64_t>(t, "PR_GET_TID_ADDRESS", SYS_prctl, PR_GET_TID_ADDRESS, kOut));
  BOOST_TEST(got.pdeath_signal ==
             InjectRead<int>(t, "PR_GET_PDEATHSIG", SYS_prctl, PR_GET_PDEATHSIG, kOut));
  BOOST_TEST(got.child_subreaper == (InjectRead<int>(t, "PR_GET_CHILD_SUBREAPER", SYS_prctl,
                                                     PR_GET_CHILD_SUBREAPER, kOut) != 0));
  auto secure = t.SyscallOk("PR_GET_SECUREBITS", SYS_prctl, PR_GET_SECUREBITS);
  REQUIRE_OK(secure.status());
  BOOST_TEST(static_cast<uint64_t>(got.securebits) == *secure);
  auto dumpable = t.SyscallOk("PR_GET_DUMPABLE", SYS_prctl, PR_GET_DUMPABLE);
  REQUIRE_OK(dumpable.status());
  BOOST_TEST(static_cast<uint64_t>(got.dumpable) == *dumpable);
  auto brk = t.SyscallOk("brk", SYS_brk, 0);
  REQUIRE_OK(brk.status());
  BOOST_TEST(got.brk == *brk);
  auto status = crpp::proc::ReadStatus(pid);
  REQUIRE_OK(status.status());
  BOOST_TEST(got.umask == status->umask);
}

// Infects, reads the state, cures, and checks it against injected syscalls.
TaskState StateChecked(Session& s) {
  const std::string before = StartAndView(s);
  auto task = Seize(s.pid());
  auto parasite = Infect(*task);
  auto state = parasite->GetTaskState();
  REQUIRE_OK(state.status());
  REQUIRE_OK(parasite->Cure());
  CheckAgainstInjected(*task, *state);
  REQUIRE_OK(task->Release(Leave::kRunning));
  E2E_REQUIRE_OK(s, it::ExpectFullView(s.pid(), before));
  return *state;
}

}  // namespace

BOOST_AUTO_TEST_CASE(task_state_of_the_signals_program) {
  Session s("infect_signals", "signals");
  const TaskState st = StateChecked(s);
  // What the program set up (tests/e2e/programs/signals.cc).
  BOOST_TEST(st.sigactions[SIGPIPE - 1].handler == reinterpret_cast<uint64_t>(SIG_IGN));
  BOOST_TEST(st.sigactions[SIGHUP - 1].handler == reinterpret_cast<uint64_t>(SIG_DFL));
  const auto& usr2 = st.sigactions[SIGUSR2 - 1];
  BOOST_TEST((usr2.flags & (SA_SIGINFO | SA_RESTART | SA_ONSTACK)) ==
             static_cast<uint64_t>(SA_SIGINFO | SA_RESTART | SA_ONSTACK));
  BOOST_TEST((usr2.mask & (1ull << (SIGWINCH - 1))) != 0);
  BOOST_TEST(st.sigaltstack.ss_size == 64u * 1024);
  BOOST_TEST(st.dumpable == 1);
  E2E_REQUIRE_OK(s, s.Signal(SIGUSR2));
  E2E_REQUIRE_OK(s, s.Verdict());
}

BOOST_AUTO_TEST_CASE(task_state_of_the_timers_program) {
  Session s("infect_timers", "timers");
  const TaskState st = StateChecked(s);
  BOOST_TEST(Usec(st.itimers[ITIMER_REAL].it_interval) == 20'000);
  BOOST_TEST(st.sigactions[SIGALRM - 1].handler > reinterpret_cast<uint64_t>(SIG_IGN));
  E2E_REQUIRE_OK(s, s.Verdict());
}

// Infected, used and cured: while infected the task has the area and a few
// more fds (the socket and the page pipes); after Cure() neither; after Release()
// it looks exactly as before, and its registers are intact (the program
// checks its general-purpose, x87, SSE/AVX/AVX-512 and mask registers).
BOOST_AUTO_TEST_CASE(cure_leaves_nothing) {
  Session s("infect_cure", "registers");
  const std::string before = StartAndView(s);
  auto fds_before = it::Fds(s.pid());
  REQUIRE_OK(fds_before.status());
  for (int round = 0; round < 3; ++round) {
    auto task = Seize(s.pid());
    auto parasite = Infect(*task);
    auto maps = crpp::proc::ReadFile(absl::StrCat("/proc/", s.pid(), "/maps"));
    REQUIRE_OK(maps.status());
    BOOST_TEST(absl::StrContains(*maps, "/memfd:crpp-parasite (deleted)"));
    auto fds = it::Fds(s.pid());
    REQUIRE_OK(fds.status());
    BOOST_TEST(fds->size() == fds_before->size() + 1 + crpp::infect::Parasite::kPagePipes);
    REQUIRE_OK(parasite->GetTaskState().status());
    auto pages = it::AnonymousPages(s.pid());
    REQUIRE_OK(pages.status());
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE_OK(parasite->DumpPages(*pages, null_fd));
    close(null_fd);
    REQUIRE_OK(parasite->Cure());
    BOOST_TEST(parasite->Cure().ok());  // idempotent
    BOOST_TEST(parasite->GetTaskState().status().code() == absl::StatusCode::kFailedPrecondition);
    maps = crpp::proc::ReadFile(absl::StrCat("/proc/", s.pid(), "/maps"));
    REQUIRE_OK(maps.status());
    BOOST_TEST(!absl::StrContains(*maps, "crpp-parasite"));
    fds = it::Fds(s.pid());
    REQUIRE_OK(fds.status());
    BOOST_TEST((*fds == *fds_before));
    REQUIRE_OK(task->Release(Leave::kRunning));
    E2E_REQUIRE_OK(s, it::ExpectFullView(s.pid(), before));
    E2E_REQUIRE_OK(s, s.ExpectRunning());
  }
  // The destructor cures too.
  {
    auto task = Seize(s.pid());
    { auto parasite = Infect(*task); }
    REQUIRE_OK(task->Release(Leave::kRunning));
    E2E_REQUIRE_OK(s, it::ExpectFullView(s.pid(), before));
  }
  E2E_REQUIRE_OK(s, s.Verdict());
}

// Infect() made to fail at each of its steps (InfectOptions::fail_at; at
// kHello the parasite really crashes, on ud2) undoes the steps before.
BOOST_AUTO_TEST_CASE(failure_at_every_step_leaves_the_task_intact) {
  Session s("infect_faults", "registers");
  const std::string before = StartAndView(s);
  auto fds_before = it::Fds(s.pid());
  REQUIRE_OK(fds_before.status());
  for (int i = static_cast<int>(InfectStep::kCreateMemfd);
       i <= static_cast<int>(InfectStep::kHello); ++i) {
    const auto step = static_cast<InfectStep>(i);
    BOOST_TEST_CONTEXT("failing at " << crpp::infect::InfectStepName(step)) {
      auto task = Seize(s.pid());
      auto parasite = Parasite::Infect(*task, Parasite::kDefaultAreaBytes, {.fail_at = step});
      BOOST_REQUIRE(!parasite.ok());
      BOOST_TEST_MESSAGE(parasite.status());
      BOOST_TEST(absl::StrContains(parasite.status().message(),
                                   absl::StrCat("failed at ", InfectStepName(step), ":")));
      BOOST_TEST(!absl::StrContains(parasite.status().message(), "undoing it failed"));
      if (step == InfectStep::kHello) {
        BOOST_TEST(absl::StrContains(parasite.status().message(), "Illegal instruction"));
      }
      auto fds = it::Fds(s.pid());
      REQUIRE_OK(fds.status());
      BOOST_TEST((*fds == *fds_before));
      REQUIRE_OK(task->Release(Leave::kRunning));
      E2E_REQUIRE_OK(s, it::ExpectFullView(s.pid(), before));
    }
  }
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, s.Verdict());
}

BOOST_AUTO_TEST_CASE(an_area_too_small_is_refused_before_anything_is_done) {
  Session s("infect_small", "counter");
  const std::string before = StartAndView(s);
  auto task = Seize(s.pid());
  auto parasite = Parasite::Infect(*task, 4096);
  BOOST_TEST(parasite.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE_OK(task->Release(Leave::kRunning));
  E2E_REQUIRE_OK(s, it::ExpectFullView(s.pid(), before));
  E2E_REQUIRE_OK(s, s.Verdict());
}

// Nothing is waited on forever: a task killed while infected makes the
// next command fail, and curing it (with nothing left to undo) returns.
BOOST_AUTO_TEST_CASE(a_task_killed_while_infected) {
  Session s("infect_killed", "counter");
  E2E_REQUIRE_OK(s, s.Start());
  auto task = Seize(s.pid());
  auto parasite = Infect(*task);
  REQUIRE_OK(parasite->GetTaskState().status());
  BOOST_REQUIRE(kill(s.pid(), SIGKILL) == 0);
  const absl::Status died = parasite->GetTaskState().status();
  BOOST_TEST_MESSAGE(died);
  BOOST_TEST(!died.ok());
  BOOST_TEST(parasite->GetTaskState().status().code() == absl::StatusCode::kFailedPrecondition);
  BOOST_TEST_MESSAGE(parasite->Cure());
  BOOST_TEST(parasite->Cure().ok());  // done once, whatever it found
  BOOST_TEST_MESSAGE(task->Release(Leave::kRunning));
}

namespace {

// Shared with the forked child below.
struct ChildCounters {
  volatile sig_atomic_t ready;
  volatile sig_atomic_t traps;
  volatile sig_atomic_t segvs;
};
ChildCounters* g_counters = nullptr;

void OnTrap(int) { g_counters->traps = g_counters->traps + 1; }
void OnSegv(int) { g_counters->segvs = g_counters->segvs + 1; }

[[noreturn]] void ChildMain() {
  struct sigaction sa = {};
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = OnTrap;
  sigaction(SIGTRAP, &sa, nullptr);
  sa.sa_handler = OnSegv;
  sigaction(SIGSEGV, &sa, nullptr);
  g_counters->ready = 1;
  for (;;) pause();
}

bool WaitFor(const volatile sig_atomic_t& v, int want) {
  for (int i = 0; i < 500 && v != want; ++i) usleep(10'000);
  return v == want;
}

}  // namespace

// The kernel resets the action of a signal it forces on a task that blocks
// it: our int3 (SIGTRAP) must not cost the task its SIGTRAP handler. And
// SIGTRAP or SIGSEGV sent by someone else while the parasite runs (they are
// left unblocked for that reason) reach the task after the release.
BOOST_AUTO_TEST_CASE(handlers_survive_and_signals_sent_meanwhile_arrive) {
  void* shared = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  BOOST_REQUIRE(shared != MAP_FAILED);
  g_counters = static_cast<ChildCounters*>(shared);
  pid_t child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) ChildMain();
  BOOST_REQUIRE(WaitFor(g_counters->ready, 1));
  auto before = it::FullView(child);
  REQUIRE_OK(before.status());
  {
    auto task = Seize(child);
    auto parasite = Infect(*task);
    kill(child, SIGTRAP);
    kill(child, SIGSEGV);
    auto state = parasite->GetTaskState();
    REQUIRE_OK(state.status());
    BOOST_TEST(state->sigactions[SIGTRAP - 1].handler == reinterpret_cast<uint64_t>(&OnTrap));
    BOOST_TEST(state->sigactions[SIGSEGV - 1].handler == reinterpret_cast<uint64_t>(&OnSegv));
    REQUIRE_OK(parasite->GetTaskState().status());
    REQUIRE_OK(parasite->Cure());
    BOOST_TEST(g_counters->traps == 0);
    BOOST_TEST(g_counters->segvs == 0);
    REQUIRE_OK(task->Release(Leave::kRunning));
  }
  BOOST_TEST(WaitFor(g_counters->traps, 1));
  BOOST_TEST(WaitFor(g_counters->segvs, 1));
  BOOST_TEST(it::ExpectFullView(child, *before).ok());
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  munmap(shared, 4096);
}
