// threads: a multi-threaded process (pthreads), 11 threads in all.
//   8 workers, each with its own random patterns held in its registers by the
//     registers program's loop (vector, general-purpose, opmask, x87, MXCSR),
//     its own name ("worker-N"), its own alternate signal stack, and a signal
//     queued for it alone: SIGRTMIN+1 with value 100+N (blocked everywhere);
//   2 sleepers blocked in FUTEX_WAIT on one word;
//   the process has SIGRTMIN+2 queued with value 4242 (blocked everywhere).
// Verdict: every worker kept its tid, name, altstack, registers (the loop saw
// no change) and finds its own queued signal with its value; the process
// finds its queued signal; the sleepers were still asleep, wake on
// FUTEX_WAKE and are joined (the kernel clears their tid words).
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"
#include "tests/e2e/programs/registers_state.h"

namespace {

constexpr int kWorkers = 8;
constexpr int kSleepers = 2;
constexpr int kSharedValue = 4242;

int WorkerSignal() { return SIGRTMIN + 1; }
int SharedSignal() { return SIGRTMIN + 2; }

struct Worker {
  int index = 0;
  pthread_t thread{};
  pid_t tid = 0;
  crpp::e2e::RegisterState registers;
  alignas(16) char altstack[64 * 1024];
  std::atomic<bool> started{false};
  crpp::e2e::Verdict verdict;  // filled by the worker itself
};

Worker g_workers[kWorkers];
uint32_t g_futex_word = 0;
std::atomic<int> g_asleep{0}, g_woken{0};
int g_null_fd = -1;

void* RunWorker(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  w.tid = static_cast<pid_t>(syscall(SYS_gettid));
  const std::string name = "worker-" + std::to_string(w.index);
  pthread_setname_np(pthread_self(), name.c_str());
  stack_t ss{};
  ss.ss_sp = w.altstack;
  ss.ss_size = sizeof w.altstack;
  if (sigaltstack(&ss, nullptr) != 0) crpp::e2e::Die("sigaltstack");
  w.started.store(true);
  RegistersLoop(&w.registers);  // returns after SIGUSR1

  const std::string who = name + ": ";
  crpp::e2e::Verdict& v = w.verdict;
  crpp::e2e::CheckRegisterState(w.registers, who, v);
  v.Expect(syscall(SYS_gettid) == w.tid, "%stid is %ld, was %d", who.c_str(), syscall(SYS_gettid),
           w.tid);
  char got[32] = {};
  pthread_getname_np(pthread_self(), got, sizeof got);
  v.Expect(name == got, "%sname is \"%s\"", who.c_str(), got);
  stack_t now{};
  sigaltstack(nullptr, &now);
  v.Expect(now.ss_sp == w.altstack && now.ss_size == sizeof w.altstack,
           "%saltstack is %p+%zu, was %p+%zu", who.c_str(), now.ss_sp, now.ss_size,
           static_cast<void*>(w.altstack), sizeof w.altstack);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, WorkerSignal());
  siginfo_t si{};
  timespec zero{0, 0};
  int sig = sigtimedwait(&one, &si, &zero);
  v.Expect(
      sig == WorkerSignal() && si.si_code == SI_QUEUE && si.si_value.sival_int == 100 + w.index,
      "%sits queued signal: got %d (code %d, value %d)", who.c_str(), sig, si.si_code,
      si.si_value.sival_int);
  // Only its own: the other workers' signals were never queued for it.
  v.Expect(sigtimedwait(&one, &si, &zero) < 0, "%sa second queued signal", who.c_str());
  return nullptr;
}

void* RunSleeper(void*) {
  g_asleep.fetch_add(1);
  while (__atomic_load_n(&g_futex_word, __ATOMIC_ACQUIRE) == 0) {
    syscall(SYS_futex, &g_futex_word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  }
  g_woken.fetch_add(1);
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "threads");
  // Blocked in every thread (they inherit the mask): both signals stay queued.
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, WorkerSignal());
  sigaddset(&blocked, SharedSignal());
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
  g_null_fd = open("/dev/null", O_WRONLY);
  if (g_null_fd < 0) crpp::e2e::Die("open /dev/null");

  crpp::e2e::Random random(crpp::e2e::UrandomSeed());
  for (int i = 0; i < kWorkers; ++i) {
    Worker& w = g_workers[i];
    w.index = i;
    crpp::e2e::InitRegisterState(w.registers, random, &crpp::e2e::g_verify_requested, g_null_fd);
    if (pthread_create(&w.thread, nullptr, RunWorker, &w) != 0) crpp::e2e::Die("pthread_create");
  }
  pthread_t sleepers[kSleepers];
  for (pthread_t& s : sleepers) {
    if (pthread_create(&s, nullptr, RunSleeper, nullptr) != 0) crpp::e2e::Die("pthread_create");
  }
  for (Worker& w : g_workers) {
    while (!w.started.load()) crpp::e2e::SleepMs(1);
    sigval value{};
    value.sival_int = 100 + w.index;
    if (pthread_sigqueue(w.thread, WorkerSignal(), value) != 0) crpp::e2e::Die("pthread_sigqueue");
  }
  sigval shared{};
  shared.sival_int = kSharedValue;
  if (sigqueue(getpid(), SharedSignal(), shared) != 0) crpp::e2e::Die("sigqueue");
  while (g_asleep.load() < kSleepers) crpp::e2e::SleepMs(1);
  crpp::e2e::SleepMs(20);  // the sleepers are in FUTEX_WAIT by now
  crpp::e2e::Ready();

  const uint64_t ticks = crpp::e2e::WaitForVerify();
  crpp::e2e::Verdict v;
  for (Worker& w : g_workers) {
    v.Expect(pthread_join(w.thread, nullptr) == 0, "worker-%d: pthread_join failed", w.index);
    v.Expect(w.verdict.ok(), "%s", w.verdict.failures().c_str());
  }
  v.Expect(g_woken.load() == 0, "%d sleepers woke before FUTEX_WAKE", g_woken.load());
  __atomic_store_n(&g_futex_word, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &g_futex_word, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
  for (pthread_t& s : sleepers) v.Expect(pthread_join(s, nullptr) == 0, "sleeper: join failed");
  v.Expect(g_woken.load() == kSleepers, "%d sleepers woke, want %d", g_woken.load(), kSleepers);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, SharedSignal());
  siginfo_t si{};
  timespec zero{0, 0};
  int sig = sigtimedwait(&one, &si, &zero);
  v.Expect(sig == SharedSignal() && si.si_value.sival_int == kSharedValue && si.si_pid == getpid(),
           "the process's queued signal: got %d (value %d, from pid %d)", sig,
           si.si_value.sival_int, si.si_pid);
  v.Note("%d workers (%s) %d sleepers ticks=%" PRIu64, kWorkers,
         crpp::e2e::DescribeRegisterState(g_workers[0].registers).c_str(), kSleepers, ticks);
  v.Finish();
}
