// counter: a counter incremented every 10 ms and mirrored (inverted) in a
// second variable on the heap.
// Verdict: the two agree, the counter went past its value at "ready", and it
// is not larger than the number of 10 ms periods since then.
#include <cinttypes>
#include <cstdint>

#include "tests/e2e/programs/common.h"

namespace {

volatile uint64_t g_counter = 0;

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "counter");
  auto* mirror = new volatile uint64_t(~uint64_t{0});
  const uint64_t at_ready = g_counter;
  const int64_t ready_ms = crpp::e2e::NowMs();
  crpp::e2e::Ready();
  while (!crpp::e2e::g_verify_requested) {
    g_counter = g_counter + 1;
    *mirror = ~g_counter;
    crpp::e2e::SleepMs(10);
  }
  const uint64_t counter = g_counter;
  const uint64_t periods = static_cast<uint64_t>(crpp::e2e::NowMs() - ready_ms) / 10 + 1;
  crpp::e2e::Verdict v;
  v.Expect(*mirror == ~counter, "mirror says %" PRIu64 " but counter is %" PRIu64, ~*mirror,
           counter);
  v.Expect(counter > at_ready, "counter %" PRIu64 " did not grow past %" PRIu64, counter, at_ready);
  v.Expect(counter <= periods, "counter %" PRIu64 " exceeds the %" PRIu64 " periods since ready",
           counter, periods);
  v.Note("counter=%" PRIu64 " ready_at=%" PRIu64, counter, at_ready);
  v.Finish();
}
