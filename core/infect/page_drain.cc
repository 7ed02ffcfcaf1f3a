#include "core/infect/page_drain.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

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

PageDrain::PageDrain(pid_t tid, std::vector<int> pipes, uint64_t stripe_bytes, int out_fd,
                     uint64_t total)
    : tid_(tid),
      pipes_(std::move(pipes)),
      stripe_bytes_(pipes_.size() > 1 ? stripe_bytes : 0),
      out_fd_(out_fd),
      total_(total) {
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

int PageDrain::Pipe() const {
  if (stripe_bytes_ == 0) return pipes_[0];
  return pipes_[(moved() / stripe_bytes_) % pipes_.size()];
}

uint64_t PageDrain::StripeLeft() const {
  const uint64_t at = moved();
  uint64_t end = total();
  if (stripe_bytes_ != 0) end = std::min(end, (at / stripe_bytes_ + 1) * stripe_bytes_);
  return end - at;
}

void PageDrain::Run() {
  absl::Status s;
  while (s.ok() && moved() < total()) {
    if (stop_.load(std::memory_order_relaxed)) {
      s = absl::CancelledError(
          absl::StrFormat("pid %d: page dump stopped after %d bytes", tid_, moved()));
      break;
    }
    pollfd p = {Pipe(), POLLIN, 0};
    int r = poll(&p, 1, kPollMs);
    if (r < 0 && errno != EINTR) s = Errno(tid_, "poll of the page pipe");
    if (r > 0) s = MoveSome();
  }
  status_ = s;
  finished_.store(true, std::memory_order_release);
}

// Moves what the current pipe holds now, up to the end of its stripe, into
// out_fd.
absl::Status PageDrain::MoveSome() {
  const int pipe_fd = Pipe();
  const size_t len = StripeLeft();
  ssize_t n = -1;
  if (!copy_) {
    n = splice(pipe_fd, nullptr, out_fd_, nullptr, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0 && errno == EINVAL) {
      log::Debug("pid %d: fd %d refuses splice(): pages copied by read() and write()", tid_,
                 out_fd_);
      copy_ = true;
    }
  }
  if (copy_) {
    if (buffer_.empty()) buffer_.resize(1 << 20);
    n = read(pipe_fd, buffer_.data(), std::min(len, buffer_.size()));
    for (ssize_t done = 0; n > 0 && done < n;) {
      ssize_t w = write(out_fd_, buffer_.data() + done, static_cast<size_t>(n - done));
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
  moved_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  return absl::OkStatus();
}

}  // namespace crpp::infect
