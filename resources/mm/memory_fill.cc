#include "resources/mm/memory_fill.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/str_format.h"

namespace crpp::resources::fill {
namespace {

// Pages read at once for a comparison: enough to keep pread calls few, small
// enough to stay in the cache while the pages are compared.
constexpr uint64_t kCompareChunk = 64 * kPage;

// The parts of [s, e) that `by` covers (`covered`) or not, in order.
Ranges Split(uint64_t s, uint64_t e, const Ranges& by, bool covered) {
  Ranges out;
  auto it = std::upper_bound(by.begin(), by.end(), s,
                             [](uint64_t v, const auto& r) { return v < r.second; });
  uint64_t at = s;
  for (; it != by.end() && it->first < e; ++it) {
    uint64_t from = std::max(at, it->first), to = std::min(e, it->second);
    if (!covered && from > at) out.emplace_back(at, from);
    if (covered && to > from) out.emplace_back(from, to);
    at = std::max(at, to);
  }
  if (!covered && at < e) out.emplace_back(at, e);
  return out;
}

void Add(Ranges& r, uint64_t s, uint64_t e) {
  if (!r.empty() && r.back().second == s) {
    r.back().second = e;
  } else {
    r.emplace_back(s, e);
  }
}

absl::Status ReadFull(int fd, const std::string& path, char* dst, uint64_t len, off_t off) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t got = pread(fd, dst + done, len - done, off + static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      return absl::DataLossError(
          absl::StrFormat("%s: at offset %d: %s", path, off + static_cast<off_t>(done),
                          got == 0 ? "truncated pages image" : strerror(errno)));
    }
    done += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

absl::Status Copy(int fd, const std::string& path, const Job& j) {
  // Faulting fresh pages in one go is cheaper than one fault per page
  // inside pread (the cost of a restore is mostly these faults).
  constexpr int kMadvPopulateWrite = 23;
  (void)madvise(j.dst, j.len, kMadvPopulateWrite);
  return ReadFull(fd, path, j.dst, j.len, j.off);
}

// Inherited pages are only read: writing one would copy it, and an equal
// page must stay the parent's. No populate here for the same reason.
absl::Status Compare(int fd, const std::string& path, const Job& j, char* buf, uint64_t buf_len,
                     uint64_t& same) {
  for (uint64_t done = 0; done < j.len;) {
    uint64_t n = std::min(buf_len, j.len - done);
    if (auto s = ReadFull(fd, path, buf, n, j.off + static_cast<off_t>(done)); !s.ok()) return s;
    for (uint64_t p = 0; p < n; p += kPage) {
      char* dst = j.dst + done + p;
      if (memcmp(dst, buf + p, kPage) == 0) {
        ++same;
      } else {
        memcpy(dst, buf + p, kPage);
      }
    }
    done += n;
  }
  return absl::OkStatus();
}

absl::Status RunList(int fd, const std::string& path, const std::vector<Job>& jobs,
                     uint64_t& same) {
  // No bigger than needed: a few shared pages should not cost the faults of
  // a whole chunk of fresh buffer.
  uint64_t need = 0;
  for (const Job& j : jobs) {
    if (j.compare) need = std::max(need, std::min(j.len, kCompareChunk));
  }
  std::unique_ptr<char[]> buf(need != 0 ? new char[need] : nullptr);
  for (const Job& j : jobs) {
    absl::Status s = j.compare ? Compare(fd, path, j, buf.get(), need, same) : Copy(fd, path, j);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

InheritedPlan PlanInherited(uint64_t at, uint64_t start, std::span<const Run> mine,
                            std::span<const Run> parent) {
  InheritedPlan plan;
  Ranges theirs;
  for (const Run& r : parent) Add(theirs, r.addr, r.end());
  auto job = [&](const Run& r, uint64_t s, uint64_t e, bool compare) {
    plan.jobs.push_back({reinterpret_cast<char*>(at + (s - start)),
                         r.off + static_cast<off_t>(s - r.addr), e - s, compare});
  };
  Ranges compared;
  for (const Run& r : mine) {
    if (!r.shared) {
      job(r, r.addr, r.end(), false);
      continue;
    }
    // Only a page the parent has can be the same page: the others were
    // shared with someone else (a sibling, say) and are written.
    for (const auto& [s, e] : Split(r.addr, r.end(), theirs, true)) {
      job(r, s, e, true);
      Add(compared, s, e);
    }
    for (const auto& [s, e] : Split(r.addr, r.end(), theirs, false)) job(r, s, e, false);
  }
  // Copies into the parent's pages would copy them first: they go, as do
  // the parent's pages this task does not have at all.
  for (const auto& [ts, te] : theirs) {
    for (const auto& [s, e] : Split(ts, te, compared, false)) {
      Add(plan.drop, at + (s - start), at + (e - start));
    }
  }
  return plan;
}

absl::Status RunJobs(int fd, const std::string& path, std::vector<Job> jobs, uint64_t& same_pages) {
  constexpr uint64_t kSplitAbove = 64ull << 20;
  uint64_t total = 0;
  for (const Job& j : jobs) total += j.len;
  std::vector<Job> second;
  if (total >= kSplitAbove) {
    uint64_t half = total / 2, acc = 0;
    std::vector<Job> first;
    for (const Job& j : jobs) {
      if (acc >= half) {
        second.push_back(j);
      } else if (acc + j.len <= half) {
        first.push_back(j);
      } else {
        uint64_t head = (half - acc) & ~(kPage - 1);
        first.push_back({j.dst, j.off, head, j.compare});
        second.push_back({j.dst + head, j.off + static_cast<off_t>(head), j.len - head, j.compare});
      }
      acc += j.len;
    }
    jobs = std::move(first);
  }
  // The helper is joined before anything else happens in the task.
  absl::Status other;
  uint64_t other_same = 0;
  std::thread helper;
  if (!second.empty()) {
    helper = std::thread([&] { other = RunList(fd, path, second, other_same); });
  }
  uint64_t mine_same = 0;
  absl::Status mine = RunList(fd, path, jobs, mine_same);
  if (helper.joinable()) helper.join();
  same_pages += mine_same + other_same;
  return mine.ok() ? other : mine;
}

}  // namespace crpp::resources::fill
