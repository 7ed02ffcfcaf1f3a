// The engine's half of a parasite page dump: a thread that empties the page
// pipes into the pages image while the parasite fills them.
//
// The copy into the image's page cache is the one copy of a dump and most of
// its time. On a thread of its own, the drain overlaps with what the engine
// does meanwhile (infecting the next task), and the drains of several tasks
// with each other. A stream cut in stripes (crpp_dump_pages_args) comes
// through several pipes in turn, so the parasite fills one while the drain
// empties another; the drain still writes the stream in order, at out_fd's
// file position. One thread per image, not one per stripe: writes into one
// file take its inode lock, and a second writer would only spin on it. A
// drain does no ptrace (only the tracer thread may): it stops at the end of
// its data, at a pipe's end of file (the task is gone or the parasite was
// cured), at an error, or when asked to.
#ifndef CRPP_CORE_INFECT_PAGE_DRAIN_H_
#define CRPP_CORE_INFECT_PAGE_DRAIN_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace crpp::infect {

class PageDrain {
 public:
  // Starts moving a `total`-byte stream into `out_fd`, at its file position:
  // stripe k (bytes k * stripe_bytes ...) from pipes[k % pipes.size()] (read
  // ends, O_NONBLOCK); all of it from pipes[0] when stripe_bytes is 0. `tid`
  // names the task in errors. The fds must stay open until Wait() returned.
  PageDrain(pid_t tid, std::vector<int> pipes, uint64_t stripe_bytes, int out_fd, uint64_t total);
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
  // thread ends once it moved the first `total` bytes.
  void Shorten(uint64_t total) { total_.store(total, std::memory_order_relaxed); }
  // Waits for the thread: OK if the whole stream went into out_fd.
  absl::Status Wait();

 private:
  uint64_t total() const { return total_.load(std::memory_order_relaxed); }
  // The pipe the next byte comes through, and how many bytes the current
  // stripe has left.
  int Pipe() const;
  uint64_t StripeLeft() const;
  void Run();
  absl::Status MoveSome();

  const pid_t tid_;
  const std::vector<int> pipes_;
  const uint64_t stripe_bytes_;
  const int out_fd_;
  std::atomic<uint64_t> total_;
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
