// The engine's half of a parasite page dump: a thread that empties a page
// pipe into the pages image while the parasite fills it.
//
// The copy into the image's page cache is the one copy of a dump and most of
// its time. On threads of their own, drains overlap with what the engine
// does meanwhile (infecting the next task), and with each other: a dump cut
// in stripes (crpp_dump_pages_args) has one pipe and one drain per stripe,
// each writing its own parts of the image. A drain does no ptrace (only the
// tracer thread may): it stops at the end of its data, at the pipe's end of
// file (the task is gone or the parasite was cured), at an error, or when
// asked to.
#ifndef CRPP_CORE_INFECT_PAGE_DRAIN_H_
#define CRPP_CORE_INFECT_PAGE_DRAIN_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace crpp::infect {

// Which bytes of the stream a drain moves, and where they go.
struct Stripe {
  uint32_t index = 0;  // this drain's stripes are index, index + count, ...
  uint32_t count = 1;  // 1: the whole stream, at out_fd's file position
  uint64_t bytes = 0;  // the size of a stripe (count > 1)
  off_t base = 0;      // out_fd's offset of the stream's first byte (count > 1)
};

class PageDrain {
 public:
  // Starts moving this drain's part of a `total`-byte stream from `pipe_fd`
  // (a read end, O_NONBLOCK) to `out_fd`. `tid` names the task in errors.
  // Both fds must stay open until Wait() returned.
  PageDrain(pid_t tid, int pipe_fd, int out_fd, uint64_t total, Stripe stripe = {});
  // Stop() and Wait().
  ~PageDrain();
  PageDrain(const PageDrain&) = delete;
  PageDrain& operator=(const PageDrain&) = delete;

  // Bytes moved so far (a sign of progress for whoever waits).
  uint64_t moved() const { return moved_.load(std::memory_order_relaxed); }
  // True once the thread stopped (all moved, or it failed).
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  // Asks the thread to stop soon, whatever it moved.
  void Stop() { stop_.store(true, std::memory_order_relaxed); }
  // The stream is shorter than announced (the parasite stopped early): the
  // thread ends once it moved its part of the first `total` bytes.
  void Shorten(uint64_t total) { total_.store(total, std::memory_order_relaxed); }
  // Waits for the thread: OK if its whole part went into out_fd.
  absl::Status Wait();

 private:
  uint64_t total() const { return total_.load(std::memory_order_relaxed); }
  void Run();
  absl::Status MoveSome();

  const pid_t tid_;
  const int pipe_fd_;
  const int out_fd_;
  const Stripe stripe_;
  std::atomic<uint64_t> total_;
  uint64_t next_ = 0;         // the stream offset of the next byte to move
  bool copy_ = false;         // out_fd refuses splice(): read() and write()
  std::vector<char> buffer_;  // for copy_
  std::atomic<uint64_t> moved_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  absl::Status status_;  // the thread's; read after join
  std::thread thread_;
};

}  // namespace crpp::infect

#endif  // CRPP_CORE_INFECT_PAGE_DRAIN_H_
