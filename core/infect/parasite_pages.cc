// Parasite's page dump (DumpPages, StartDumpPages, FinishDumpPages): the
// parasite vmsplices batches of the task's pages into the page pipe, a
// PageDrain thread empties it into the image, and the tracer thread talks to
// the parasite and watches the task.
#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "core/infect/parasite.h"
#include "core/log.h"
#include "parasite/parasite_protocol.h"

namespace crpp::infect {
namespace {

constexpr uint64_t kPage = 4096;

}  // namespace

absl::Status Parasite::DumpPages(absl::Span<const PageRange> ranges, int out_fd) {
  if (auto s = StartDumpPages(ranges, out_fd); !s.ok()) return s;
  return FinishDumpPages();
}

absl::Status Parasite::StartDumpPages(absl::Span<const PageRange> ranges, int out_fd) {
  if (state_ != State::kRunning) return NotRunning();
  if (drain_ || pages_sent_ < pages_.size()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("pid %d: a page dump is already under way", task_.tid()));
  }
  pages_.clear();
  pages_sent_ = 0;
  sent_bytes_ = 0;
  uint64_t total = 0;
  for (const PageRange& r : ranges) {
    if (r.pages == 0) continue;
    pages_.push_back(r);
    total += r.pages * kPage;
  }
  if (total == 0) return absl::OkStatus();
  // Stripes of a pipe's size through the pipes in turn, when there is more
  // than one pipe's worth: the parasite fills the next pipe while the drain
  // empties this one.
  const int pipe_bytes = fcntl(pipes_[0], F_GETPIPE_SZ);
  stripes_ = 1;
  stripe_bytes_ = 0;
  if (pipe_bytes > 0 && total > static_cast<uint64_t>(pipe_bytes)) {
    stripes_ = kPagePipes;
    stripe_bytes_ = static_cast<uint64_t>(pipe_bytes);
  }
  drain_ = std::make_unique<PageDrain>(task_.tid(),
                                       std::vector<int>(pipes_.begin(), pipes_.begin() + stripes_),
                                       stripe_bytes_, out_fd, total);
  if (auto s = SendPagesBatch(); !s.ok()) return AbortPages(s);
  return absl::OkStatus();
}

// Puts as many of the ranges not sent yet as the data area holds there, as
// iovecs of the task's addresses, and asks the parasite to vmsplice them.
absl::Status Parasite::SendPagesBatch() {
  auto* args = reinterpret_cast<crpp_dump_pages_args*>(data());
  *args = {sent_bytes_, stripe_bytes_, stripes_, 0};
  auto* iov = reinterpret_cast<iovec*>(args + 1);
  const size_t max_iov = (area_bytes_ - data_offset_ - sizeof *args) / sizeof(iovec);
  size_t nr = 0;
  batch_bytes_ = 0;
  for (; pages_sent_ < pages_.size() && nr < max_iov; ++pages_sent_) {
    const PageRange& r = pages_[pages_sent_];
    iov[nr++] = {reinterpret_cast<void*>(r.start), r.pages * kPage};
    batch_bytes_ += r.pages * kPage;
  }
  return Send(CRPP_PARASITE_DUMP_PAGES, nr);
}

absl::Status Parasite::FinishDumpPages() {
  if (!drain_) return absl::OkStatus();  // nothing was asked (or it failed already)
  int64_t quiet_ms = 0;
  uint64_t last_moved = drain_->moved();
  for (;;) {
    pollfd p = {sock_, POLLIN, 0};
    int r = poll(&p, 1, kPollMs);
    if (r < 0) {
      if (errno == EINTR) continue;
      return AbortPages(
          absl::InternalError(absl::StrFormat("pid %d: poll: %s", task_.tid(), strerror(errno))));
    }
    if (r == 0) {
      // The drain stops early only on an error.
      if (drain_->finished()) {
        if (absl::Status drained = drain_->Wait(); !drained.ok()) return AbortPages(drained);
      }
      // Pages still coming through the pipes are progress, whatever the time.
      if (uint64_t moved = drain_->moved(); moved != last_moved) {
        last_moved = moved;
        quiet_ms = 0;
        continue;
      }
      if (auto s = CheckAlive(quiet_ms); !s.ok()) return AbortPages(s);
      continue;
    }
    crpp_parasite_msg reply{};
    auto got = TryReceive(CRPP_PARASITE_DUMP_PAGES, reply);
    if (!got.ok()) return AbortPages(got.status());
    if (!*got) continue;
    quiet_ms = 0;
    if (reply.status < 0 && reply.arg0 <= batch_bytes_) {
      // The parasite stopped at a page it could not read and is still fine:
      // what it put in the pipes goes into out_fd, and the error is the dump's.
      drain_->Shorten(sent_bytes_ + reply.arg0);
      if (absl::Status drained = EndPages(); !drained.ok()) return AbortPages(drained);
      return absl::InternalError(
          absl::StrFormat("pid %d: parasite: vmsplice of the pages: %s (after %d of %d bytes)",
                          task_.tid(), strerror(-reply.status), reply.arg0, batch_bytes_));
    }
    if (reply.arg0 != batch_bytes_) {
      return AbortPages(absl::InternalError(absl::StrFormat(
          "pid %d: the parasite sent %d of %d bytes", task_.tid(), reply.arg0, batch_bytes_)));
    }
    if (pages_sent_ == pages_.size()) break;
    sent_bytes_ += batch_bytes_;
    if (auto s = SendPagesBatch(); !s.ok()) return AbortPages(s);
  }
  // Everything is in the pipes (or already in out_fd): the drain ends on its
  // own.
  if (absl::Status drained = EndPages(); !drained.ok()) return AbortPages(drained);
  return absl::OkStatus();
}

// Waits for the drain of the stream.
absl::Status Parasite::EndPages() {
  absl::Status s = drain_->Wait();
  drain_.reset();
  pages_.clear();
  pages_sent_ = 0;
  return s;
}

// A page dump that cannot go on: the task is stopped first (the parasite may
// still be filling the pipes), then the drain, and `why` returned.
absl::Status Parasite::AbortPages(absl::Status why) {
  absl::Status s = Broken(std::move(why));
  if (drain_) drain_->Stop();
  drain_.reset();
  pages_.clear();
  pages_sent_ = 0;
  log::Debug("pid %d: page dump stopped: %s", task_.tid(), s.ToString());
  return s;
}

}  // namespace crpp::infect
