// timers: an interval timer (setitimer ITIMER_REAL, every 20 ms) counting
// SIGALRMs, and a POSIX timer (timer_create on CLOCK_MONOTONIC, SIGEV_SIGNAL
// with SIGRTMIN+2 and a known sival_int, every 20 ms) counting its signals.
// Verdict: over 200 ms after SIGUSR1 both counts grow; getitimer and
// timer_gettime (with the timer id from before) still show 20 ms periods;
// every timer signal carried SI_TIMER and the sival_int.
#include <sys/time.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "tests/e2e/programs/common.h"

namespace {

constexpr long kPeriodNs = 20 * 1000 * 1000;
constexpr int kSival = 0x5eed;
constexpr int kWaitMs = 200;
constexpr int kMinTicks = 3;  // of the 10 expected in kWaitMs

volatile sig_atomic_t g_alarms = 0;
volatile sig_atomic_t g_ticks = 0;
volatile sig_atomic_t g_bad_tick = 0;
timer_t g_timer;

int TimerSignal() { return SIGRTMIN + 2; }

void OnAlarm(int) { g_alarms = g_alarms + 1; }

void OnTick(int, siginfo_t* info, void*) {
  g_ticks = g_ticks + 1;
  if (info->si_code != SI_TIMER || info->si_value.sival_int != kSival) g_bad_tick = 1;
}

void Handle(int sig, void (*handler)(int), void (*action)(int, siginfo_t*, void*)) {
  struct sigaction sa = {};
  if (action != nullptr) {
    sa.sa_sigaction = action;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
  } else {
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
  }
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, nullptr) != 0) crpp::e2e::Die("sigaction");
}

void SetUp() {
  Handle(SIGALRM, OnAlarm, nullptr);
  Handle(TimerSignal(), nullptr, OnTick);
  struct itimerval itv = {{0, kPeriodNs / 1000}, {0, kPeriodNs / 1000}};
  if (setitimer(ITIMER_REAL, &itv, nullptr) != 0) crpp::e2e::Die("setitimer");
  struct sigevent sev = {};
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = TimerSignal();
  sev.sigev_value.sival_int = kSival;
  if (timer_create(CLOCK_MONOTONIC, &sev, &g_timer) != 0) crpp::e2e::Die("timer_create");
  struct itimerspec its = {{0, kPeriodNs}, {0, kPeriodNs}};
  if (timer_settime(g_timer, 0, &its, nullptr) != 0) crpp::e2e::Die("timer_settime");
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "timers");
  SetUp();
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  const int alarms = g_alarms;
  const int ticks = g_ticks;
  const int64_t start = crpp::e2e::NowMs();
  while (crpp::e2e::NowMs() - start < kWaitMs) crpp::e2e::SleepMs(10);
  const int alarms_grew = g_alarms - alarms;
  const int ticks_grew = g_ticks - ticks;

  crpp::e2e::Verdict v;
  v.Expect(alarms_grew >= kMinTicks, "only %d SIGALRMs in %d ms (had %d)", alarms_grew, kWaitMs,
           alarms);
  v.Expect(ticks_grew >= kMinTicks, "only %d POSIX timer signals in %d ms (had %d)", ticks_grew,
           kWaitMs, ticks);
  v.Expect(!g_bad_tick, "a POSIX timer signal lacked SI_TIMER or the sival_int");
  struct itimerval itv = {};
  getitimer(ITIMER_REAL, &itv);
  v.Expect(itv.it_interval.tv_sec == 0 && itv.it_interval.tv_usec == kPeriodNs / 1000,
           "ITIMER_REAL interval is %ld.%06ld s", static_cast<long>(itv.it_interval.tv_sec),
           static_cast<long>(itv.it_interval.tv_usec));
  struct itimerspec its = {};
  if (v.Expect(timer_gettime(g_timer, &its) == 0, "timer_gettime on the timer id: %s",
               strerror(errno))) {
    v.Expect(its.it_interval.tv_sec == 0 && its.it_interval.tv_nsec == kPeriodNs,
             "POSIX timer interval is %ld.%09ld s", static_cast<long>(its.it_interval.tv_sec),
             its.it_interval.tv_nsec);
  }
  v.Note("alarms=%d(+%d) timer_signals=%d(+%d) in %d ms", alarms, alarms_grew, ticks, ticks_grew,
         kWaitMs);
  v.Finish();
}
