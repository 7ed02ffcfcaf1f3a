// Following the restorers of many processes at once: every restored process
// ends its restore in the restorer blob, which the engine traces to the exit
// of the final rt_sigreturn of each thread, where the thread is the restored
// one again. The processes go through it side by side: one waitid loop serves
// the stops of all of them, so the tree does not wait for its tasks one after
// the other.
#ifndef CRPP_CORE_RESTORE_FOLLOW_H_
#define CRPP_CORE_RESTORE_FOLLOW_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace crpp::restore_internal {

// What is left to read from task `pid`'s status pipe `fd` (a failed task's
// report): up to the pipe's end, or, once the task has ended, what is there.
// The end may never come, even after: another task sharing the failed one's
// fd table (clone(CLONE_FILES)) holds the pipe's write end too.
std::string ReadRest(int fd, pid_t pid);

class RestorerFollower {
 public:
  // `threads` gets the tid of every thread (but the main ones) as soon as it
  // is traced, for the caller to kill and collect if the restore fails.
  explicit RestorerFollower(std::vector<pid_t>& threads) : threads_(threads) {}

  // Traces process `pid`, which waits on `go` in front of its restorer and
  // will create `nr_threads` more threads there. It is told to go once it
  // has stopped for us, so it cannot reach its final trap untraced.
  // `status_fd` carries its error report if its restorer fails.
  absl::Status Add(pid_t pid, size_t nr_threads, int status_fd, std::atomic<uint32_t>* go);

  // Handles the stops that are there; with `block`, waits for one first
  // (only while a process is still on its way). Returns whether anything
  // was handled.
  absl::StatusOr<bool> Poll(bool block);

  // Some process added is not at its end yet.
  bool Active() const { return active_ > 0; }

 private:
  enum Phase { kToTrap, kToEntry, kToExit, kDone };
  struct Process {
    pid_t pid;
    size_t nr_threads;
    size_t done = 0;
    int status_fd;
    std::atomic<uint32_t>* go;
    bool told_to_go = false;
  };
  struct Thread {
    size_t process;  // index in processes_
    Phase phase = kToTrap;
  };

  absl::Status Handle(pid_t tid);
  // The process a thread we did not know of yet belongs to (a thread the
  // restorer just created, seen before its creator's clone event).
  absl::StatusOr<size_t> Owner(pid_t tid) const;
  void Track(pid_t tid, size_t process);

  std::vector<pid_t>& threads_;
  std::vector<Process> processes_;
  std::map<pid_t, Thread> known_;
  size_t active_ = 0;
};

}  // namespace crpp::restore_internal

#endif  // CRPP_CORE_RESTORE_FOLLOW_H_
