#include "core/infect/page_drain.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/log.h"

namespace crpp::infect {
namespace {

// How long the thread sleeps in poll() before it looks at stop_ again.
constexpr int kPollMs = 20;

absl::Status Errno(pid_t tid, const char* what) {
  return absl::InternalError(absl::StrFormat("pid %d: %s: %s", tid, what, strerror(errno)));
}

}  // namespace

PageDrain::PageDrain(pid_t tid, int pipe_fd, int out_fd, uint64_t total, Stripe stripe)
    : tid_(tid), pipe_fd_(pipe_fd), out_fd_(out_fd), stripe_(stripe), total_(total) {
  if (stripe_.count > 1) next_ = stripe_.index * stripe_.bytes;
  thread_ = std::thread([this] { Run(); });
}

PageDrain::~PageDrain() {
  Stop();
  (void)Wait();
}

absl::Status PageDrain::Wait() {
  if (thread_.joinable()) thread_.join();
  return status_;
}

void PageDrain::Run() {
  absl::Status s;
  while (s.ok() && next_ < total()) {
    if (stop_.load(std::memory_order_relaxed)) {
      s = absl::CancelledError(
          absl::StrFormat("pid %d: page dump stopped after %d bytes", tid_, moved()));
      break;
    }
    pollfd p = {pipe_fd_, POLLIN, 0};
    int r = poll(&p, 1, kPollMs);
    if (r < 0 && errno != EINTR) s = Errno(tid_, "poll of the page pipe");
    if (r > 0) s = MoveSome();
  }
  status_ = s;
  finished_.store(true, std::memory_order_release);
}

// Moves what the pipe holds now, up to the end of the current stripe, into
// out_fd.
absl::Status PageDrain::MoveSome() {
  const bool striped = stripe_.count > 1;
  uint64_t end = total();
  if (striped) end = std::min(end, (next_ / stripe_.bytes + 1) * stripe_.bytes);
  const size_t len = end - next_;
  loff_t at = striped ? stripe_.base + static_cast<loff_t>(next_) : 0;
  ssize_t n = -1;
  if (!copy_) {
    n = splice(pipe_fd_, nullptr, out_fd_, striped ? &at : nullptr, len,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINVAL) {
      log::Debug("pid %d: fd %d refuses splice(): pages copied by read() and write()", tid_,
                 out_fd_);
      copy_ = true;
    }
  }
  if (copy_) {
    if (buffer_.empty()) buffer_.resize(1 << 20);
    n = read(pipe_fd_, buffer_.data(), std::min(len, buffer_.size()));
    for (ssize_t done = 0; n > 0 && done < n;) {
      const size_t left = static_cast<size_t>(n - done);
      ssize_t w = striped ? pwrite(out_fd_, buffer_.data() + done, left, at + done)
                          : write(out_fd_, buffer_.data() + done, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Errno(tid_, "write of the pages");
      done += w;
    }
  }
  if (n == 0) {
    return absl::AbortedError(absl::StrFormat(
        "pid %d: the page pipe closed after %d bytes: the task is gone", tid_, moved()));
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return absl::OkStatus();
    return Errno(tid_, copy_ ? "read from the page pipe" : "splice of the pages");
  }
  next_ += static_cast<uint64_t>(n);
  // At the end of a stripe, on to this drain's next one.
  if (striped && next_ % stripe_.bytes == 0) next_ += (stripe_.count - 1) * stripe_.bytes;
  moved_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  return absl::OkStatus();
}

}  // namespace crpp::infect
