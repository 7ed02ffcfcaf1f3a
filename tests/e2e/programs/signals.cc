// signals: signal dispositions, the blocked mask and the alternate stack.
// - SIGUSR2: a counting SA_SIGINFO|SA_RESTART|SA_ONSTACK handler whose
//   sa_mask holds SIGWINCH; it notes what it sees (si_code, the mask while it
//   runs, whether it runs on the alternate stack);
// - SIGRTMIN+1: a handler, and blocked by sigprocmask;
// - SIGPIPE ignored, SIGHUP default; an alternate signal stack.
// The harness sends SIGUSR2 (after the restore) and then SIGUSR1.
// Verdict: the SIGUSR2 handler ran (after "ready") and saw what it should;
// sigaction, sigprocmask and sigaltstack still report the set-up state.
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

#include "tests/e2e/programs/common.h"

namespace {

constexpr size_t kAltStackSize = 64 * 1024;
constexpr int kUsr2Flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;

void* g_alt_stack = nullptr;
volatile sig_atomic_t g_usr2_count = 0;
volatile sig_atomic_t g_rt_count = 0;
volatile sig_atomic_t g_usr2_si_code = 0;
volatile sig_atomic_t g_usr2_si_pid = 0;
volatile sig_atomic_t g_usr2_mask_ok = 1;
volatile sig_atomic_t g_usr2_on_alt_stack = 1;

int Rt() { return SIGRTMIN + 1; }

void OnUsr2(int, siginfo_t* info, void*) {
  g_usr2_count = g_usr2_count + 1;
  g_usr2_si_code = info->si_code;
  g_usr2_si_pid = info->si_pid;
  sigset_t now;
  sigprocmask(SIG_BLOCK, nullptr, &now);
  // SIGUSR2 itself (no SA_NODEFER), sa_mask's SIGWINCH and the task's
  // SIGRTMIN+1. (SIGUSR1 may be blocked too: when both are pending, the
  // kernel runs this handler on top of SIGUSR1's.)
  if (sigismember(&now, SIGUSR2) != 1 || sigismember(&now, SIGWINCH) != 1 ||
      sigismember(&now, Rt()) != 1) {
    g_usr2_mask_ok = 0;
  }
  char here;
  auto at = reinterpret_cast<uintptr_t>(&here);
  auto base = reinterpret_cast<uintptr_t>(g_alt_stack);
  if (at < base || at >= base + kAltStackSize) g_usr2_on_alt_stack = 0;
}

void OnRt(int, siginfo_t*, void*) { g_rt_count = g_rt_count + 1; }

void SetUp() {
  g_alt_stack =
      mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (g_alt_stack == MAP_FAILED) crpp::e2e::Die("mmap");
  stack_t ss = {};
  ss.ss_sp = g_alt_stack;
  ss.ss_size = kAltStackSize;
  if (sigaltstack(&ss, nullptr) != 0) crpp::e2e::Die("sigaltstack");

  struct sigaction sa = {};
  sa.sa_sigaction = OnUsr2;
  sa.sa_flags = kUsr2Flags;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGWINCH);
  if (sigaction(SIGUSR2, &sa, nullptr) != 0) crpp::e2e::Die("sigaction(SIGUSR2)");

  sa = {};
  sa.sa_sigaction = OnRt;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(Rt(), &sa, nullptr) != 0) crpp::e2e::Die("sigaction(SIGRTMIN+1)");

  sa = {};
  sa.sa_handler = SIG_IGN;
  if (sigaction(SIGPIPE, &sa, nullptr) != 0) crpp::e2e::Die("sigaction(SIGPIPE)");
  sa.sa_handler = SIG_DFL;
  if (sigaction(SIGHUP, &sa, nullptr) != 0) crpp::e2e::Die("sigaction(SIGHUP)");

  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, Rt());
  if (sigprocmask(SIG_BLOCK, &block, nullptr) != 0) crpp::e2e::Die("sigprocmask");
}

void CheckActions(crpp::e2e::Verdict& v) {
  struct sigaction sa = {};
  sigaction(SIGUSR2, nullptr, &sa);
  v.Expect(sa.sa_sigaction == OnUsr2, "SIGUSR2 handler is %p, want %p",
           reinterpret_cast<void*>(sa.sa_sigaction), reinterpret_cast<void*>(OnUsr2));
  v.Expect((sa.sa_flags & (kUsr2Flags | SA_NODEFER | SA_RESETHAND)) == kUsr2Flags,
           "SIGUSR2 sa_flags are %#x, want SA_SIGINFO|SA_RESTART|SA_ONSTACK", sa.sa_flags);
  v.Expect(sigismember(&sa.sa_mask, SIGWINCH) == 1 && sigismember(&sa.sa_mask, SIGTERM) == 0,
           "SIGUSR2 sa_mask is not {SIGWINCH}");
  sigaction(Rt(), nullptr, &sa);
  v.Expect(sa.sa_sigaction == OnRt && (sa.sa_flags & SA_SIGINFO),
           "SIGRTMIN+1 handler or flags changed");
  sigaction(SIGPIPE, nullptr, &sa);
  v.Expect(sa.sa_handler == SIG_IGN, "SIGPIPE is no longer ignored");
  sigaction(SIGHUP, nullptr, &sa);
  v.Expect(sa.sa_handler == SIG_DFL, "SIGHUP is no longer SIG_DFL");
}

void CheckMaskAndStack(crpp::e2e::Verdict& v) {
  sigset_t now;
  sigprocmask(SIG_BLOCK, nullptr, &now);
  v.Expect(sigismember(&now, Rt()) == 1, "SIGRTMIN+1 is not blocked");
  v.Expect(sigismember(&now, SIGUSR2) == 0 && sigismember(&now, SIGUSR1) == 0 &&
               sigismember(&now, SIGWINCH) == 0,
           "the blocked mask holds more than SIGRTMIN+1");
  v.Expect(g_rt_count == 0, "the blocked SIGRTMIN+1 handler ran %d times", int{g_rt_count});
  stack_t ss = {};
  sigaltstack(nullptr, &ss);
  v.Expect(ss.ss_sp == g_alt_stack && ss.ss_size == kAltStackSize && ss.ss_flags == 0,
           "sigaltstack is %p+%zu flags %d, want %p+%zu flags 0", ss.ss_sp, ss.ss_size, ss.ss_flags,
           g_alt_stack, kAltStackSize);
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "signals");
  SetUp();
  const int at_ready = g_usr2_count;
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  // SIGUSR2 was sent before SIGUSR1, but give its delivery a moment anyway.
  for (int i = 0; i < 100 && g_usr2_count == at_ready; ++i) crpp::e2e::SleepMs(10);
  crpp::e2e::Verdict v;
  v.Expect(g_usr2_count > at_ready, "the SIGUSR2 handler did not run (count %d)",
           int{g_usr2_count});
  if (g_usr2_count > at_ready) {
    v.Expect(g_usr2_si_code == SI_USER, "SIGUSR2 si_code is %d, want SI_USER", int{g_usr2_si_code});
    v.Expect(g_usr2_mask_ok, "the mask inside the SIGUSR2 handler was wrong");
    v.Expect(g_usr2_on_alt_stack, "the SIGUSR2 handler did not run on the alternate stack");
  }
  CheckActions(v);
  CheckMaskAndStack(v);
  v.Note("usr2_count=%d from_pid=%d", int{g_usr2_count}, int{g_usr2_si_pid});
  v.Finish();
}
