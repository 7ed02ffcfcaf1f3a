#define BOOST_TEST_MODULE parallel
#include "core/parallel.h"

#include <unistd.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace crpp {
namespace {

BOOST_AUTO_TEST_CASE(every_index_runs_once) {
  for (size_t n : {0, 1, 2, 3, 100, 1000}) {
    std::vector<std::atomic<int>> calls(n);
    ParallelFor(n, [&](size_t i) { calls[i].fetch_add(1); });
    for (size_t i = 0; i < n; ++i) BOOST_TEST(calls[i].load() == 1, "n=" << n << " i=" << i);
  }
}

BOOST_AUTO_TEST_CASE(spreads_over_the_cpus) {
  const size_t cpus = std::thread::hardware_concurrency();
  std::mutex m;
  std::set<pid_t> threads;
  // Pieces that take a while, so that every helper gets some.
  ParallelFor(8 * cpus, [&](size_t) {
    usleep(2000);
    std::lock_guard<std::mutex> lock(m);
    threads.insert(gettid());
  });
  BOOST_TEST(threads.size() == cpus);
  BOOST_TEST(threads.count(gettid()) == 1u);  // the caller works too
}

}  // namespace
}  // namespace crpp
