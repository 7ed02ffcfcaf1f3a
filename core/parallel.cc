#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace crpp {

void ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  const size_t cpus = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t workers = std::min(cpus, n);
  std::atomic<size_t> next{0};
  // Indexes are handed out one at a time: the pieces differ in cost (a
  // process with many fds or mappings), so fixed shares would leave a
  // thread idle at the end.
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> helpers;
  for (size_t k = 1; k < workers; ++k) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
}

}  // namespace crpp
