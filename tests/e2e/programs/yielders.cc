// yielders: the main thread and three others loop on 1 us sleeps through the
// same libc function, so all of them stop, when seized, right after the same
// syscall instruction, and run on from there a few microseconds after
// they are let go.
// A dump that patches the code at one thread's ip (an injected syscall)
// while another thread of the process already runs again kills the process
// (the other thread runs into the patch); this program makes that certain.
// Verdict: every thread kept napping (its count grew since the last look),
// and the process is whole (4 threads).
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cinttypes>
#include <filesystem>

#include "tests/e2e/programs/common.h"

namespace {

constexpr int kThreads = 3;
std::atomic<uint64_t> g_counts[kThreads + 1];

void Nap() {
  timespec ts = {0, 1000};
  nanosleep(&ts, nullptr);
}

void Yield(int i) {
  for (;;) {
    Nap();
    g_counts[i].fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "yielders");
  for (int i = 1; i <= kThreads; ++i) {
    pthread_t t;
    if (pthread_create(
            &t, nullptr,
            [](void* arg) -> void* {
              Yield(static_cast<int>(reinterpret_cast<intptr_t>(arg)));
              return nullptr;
            },
            reinterpret_cast<void*>(static_cast<intptr_t>(i))) != 0) {
      crpp::e2e::Die("pthread_create");
    }
  }
  crpp::e2e::Ready();
  while (!crpp::e2e::g_verify_requested) {
    Nap();
    g_counts[0].fetch_add(1, std::memory_order_relaxed);
  }
  crpp::e2e::Verdict v;
  uint64_t before[kThreads + 1];
  for (int i = 0; i <= kThreads; ++i) before[i] = g_counts[i].load();
  crpp::e2e::SleepMs(50);
  for (int i = 1; i <= kThreads; ++i) {
    v.Expect(g_counts[i].load() > before[i], "thread %d stopped napping", i);
  }
  std::error_code ec;
  auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
  const long threads = ec ? -1 : std::distance(it, std::filesystem::directory_iterator());
  v.Expect(threads == kThreads + 1, "%ld threads, not %d", threads, kThreads + 1);
  v.Note("main=%" PRIu64, before[0]);
  v.Finish();
}
