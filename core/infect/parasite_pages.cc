// Parasite's page dump (DumpPages, StartDumpPages, FinishDumpPages): the
// parasite vmsplices batches of the task's pages into the page pipe, a
// PageDrain thread empties it into the image, and the tracer thread talks to
// the parasite and watches the task.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
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
  if (drains_[0] || pages_sent_ < pages_.size()) {
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
  // Stripes when the image is a plain file big enough: each drain writes
  // its stripes at their offsets. Else one pipe, at the file position.
  stripe_ = {};
  struct stat st;
  const int fl = fcntl(out_fd, F_GETFL);
  const int pipe_bytes = fcntl(pipes_[0], F_GETPIPE_SZ);
  const off_t base = lseek(out_fd, 0, SEEK_CUR);
  if (fstat(out_fd, &st) == 0 && S_ISREG(st.st_mode) && fl >= 0 && !(fl & O_APPEND) &&
      pipe_bytes > 0 && base >= 0 && total >= 2 * static_cast<uint64_t>(pipe_bytes)) {
    stripe_ = {0, kPagePipes, static_cast<uint64_t>(pipe_bytes), base};
  }
  out_fd_ = out_fd;
  total_bytes_ = total;
  for (uint32_t k = 0; k < stripe_.count; ++k) {
    Stripe mine = stripe_;
    mine.index = k;
    drains_[k] = std::make_unique<PageDrain>(task_.tid(), pipes_[k], out_fd, total, mine);
  }
  if (auto s = SendPagesBatch(); !s.ok()) return AbortPages(s);
  return absl::OkStatus();
}

// Puts as many of the ranges not sent yet as the data area holds there, as
// iovecs of the task's addresses, and asks the parasite to vmsplice them.
absl::Status Parasite::SendPagesBatch() {
  auto* args = reinterpret_cast<crpp_dump_pages_args*>(data());
  *args = {sent_bytes_, stripe_.bytes, stripe_.count, 0};
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
  if (!drains_[0]) return absl::OkStatus();  // nothing was asked (or it failed already)
  int64_t quiet_ms = 0;
  uint64_t last_moved = Drained();
  for (;;) {
    pollfd p = {sock_, POLLIN, 0};
    int r = poll(&p, 1, kPollMs);
    if (r < 0) {
      if (errno == EINTR) continue;
      return AbortPages(
          absl::InternalError(absl::StrFormat("pid %d: poll: %s", task_.tid(), strerror(errno))));
    }
    if (r == 0) {
      // A drain stops early only on an error; one that moved all its part
      // waits for nothing.
      for (auto& d : drains_) {
        if (d && d->finished()) {
          if (absl::Status drained = d->Wait(); !drained.ok()) return AbortPages(drained);
        }
      }
      // Pages still coming through the pipes are progress, whatever the time.
      if (uint64_t moved = Drained(); moved != last_moved) {
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
      const uint64_t came = sent_bytes_ + reply.arg0;
      for (auto& d : drains_) {
        if (d) d->Shorten(came);
      }
      if (absl::Status drained = EndPages(came); !drained.ok()) return AbortPages(drained);
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
  // Everything is in the pipes (or already in out_fd): the drains end on
  // their own.
  if (absl::Status drained = EndPages(total_bytes_); !drained.ok()) return AbortPages(drained);
  return absl::OkStatus();
}

uint64_t Parasite::Drained() const {
  uint64_t moved = 0;
  for (const auto& d : drains_) {
    if (d) moved += d->moved();
  }
  return moved;
}

// Waits for the drains of a stream of `bytes`, and leaves out_fd's position
// after them (striped drains write at offsets).
absl::Status Parasite::EndPages(uint64_t bytes) {
  absl::Status first;
  for (auto& d : drains_) {
    if (!d) continue;
    if (absl::Status s = d->Wait(); !s.ok() && first.ok()) first = s;
    d.reset();
  }
  pages_.clear();
  pages_sent_ = 0;
  if (first.ok() && stripe_.count > 1 &&
      lseek(out_fd_, stripe_.base + static_cast<off_t>(bytes), SEEK_SET) < 0) {
    first = absl::InternalError(
        absl::StrFormat("pid %d: seek past the pages: %s", task_.tid(), strerror(errno)));
  }
  return first;
}

// A page dump that cannot go on: the task is stopped first (the parasite may
// still be filling the pipes), then the drains, and `why` returned.
absl::Status Parasite::AbortPages(absl::Status why) {
  absl::Status s = Broken(std::move(why));
  for (auto& d : drains_) {
    if (d) d->Stop();
  }
  for (auto& d : drains_) d.reset();
  pages_.clear();
  pages_sent_ = 0;
  log::Debug("pid %d: page dump stopped: %s", task_.tid(), s.ToString());
  return s;
}

}  // namespace crpp::infect
