#include "resources/events/timerfd.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_format.h"
#include "core/log.h"
#include "resources/common/descriptions.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

namespace crpp::resources {
namespace {

constexpr int64_t kNsPerSec = 1000000000;

// "(sec, nsec)" as fdinfo shows it_value and it_interval.
absl::StatusOr<timespec> ParsePair(const descriptions::FdInfoLines& info, std::string_view key,
                                   const std::string& where) {
  const std::string* v = info.Find(key);
  long long sec = 0, nsec = 0;
  if (v == nullptr || sscanf(v->c_str(), "(%lld, %lld)", &sec, &nsec) != 2) {
    return absl::DataLossError(absl::StrFormat("%s: fdinfo has no \"%s\"", where, key));
  }
  return timespec{static_cast<time_t>(sec), static_cast<long>(nsec)};
}

absl::Status Describe(const descriptions::Found& f, criu::file_entry& e) {
  const std::string where = descriptions::Where(f.pid, f.fd);
  descriptions::FdInfoLines info = f.info;
  // The description's own view, with a periodic timer's overruns counted.
  auto copied = descriptions::CopyFd(f.pid, f.fd);
  if (!copied.ok()) return copied.status();
  const int copy = *copied;
  itimerspec now = {};
  absl::Status s;
  if (timerfd_gettime(copy, &now) != 0) s = descriptions::Errno(where + ": timerfd_gettime");
  if (s.ok()) {
    auto fresh = descriptions::ReadFdInfoLines(getpid(), copy);
    if (fresh.ok()) {
      info = std::move(*fresh);
    } else {
      s = fresh.status();
    }
  }
  close(copy);
  if (!s.ok()) return s;
  auto clockid = info.Number("clockid", 10, where);
  auto ticks = info.Number("ticks", 10, where);
  auto settime_flags = info.Number("settime flags", 8, where);
  auto interval = ParsePair(info, "it_interval", where);
  for (const absl::Status& st :
       {clockid.status(), ticks.status(), settime_flags.status(), interval.status()}) {
    if (!st.ok()) return st;
  }
  auto* t = e.mutable_tfd();
  t->set_id(0);
  t->set_flags(f.flags);
  SetNoOwner(*t->mutable_fown());
  t->set_clockid(static_cast<uint32_t>(*clockid));
  t->set_ticks(*ticks);
  t->set_settime_flags(static_cast<uint32_t>(*settime_flags));
  t->set_vsec(static_cast<uint64_t>(now.it_value.tv_sec));
  t->set_vnsec(static_cast<uint64_t>(now.it_value.tv_nsec));
  t->set_isec(static_cast<uint64_t>(interval->tv_sec));
  t->set_insec(static_cast<uint64_t>(interval->tv_nsec));
  log::Info("timerfd: %s: clock %d, %d.%09d s left, interval %d.%09d s, %d ticks unread", where,
            *clockid, now.it_value.tv_sec, now.it_value.tv_nsec, interval->tv_sec,
            interval->tv_nsec, *ticks);
  return absl::OkStatus();
}

// The clock clock_gettime reads for a timer on CLOCKID.
clockid_t ReadableClock(clockid_t clockid) {
  if (clockid == CLOCK_REALTIME_ALARM) return CLOCK_REALTIME;
  if (clockid == CLOCK_BOOTTIME_ALARM) return CLOCK_BOOTTIME;
  return clockid;
}

absl::Status Arm(int fd, const criu::timerfd_entry& t, const std::string& what) {
  itimerspec its = {};
  its.it_value.tv_sec = static_cast<time_t>(t.vsec());
  its.it_value.tv_nsec = static_cast<long>(t.vnsec());
  its.it_interval.tv_sec = static_cast<time_t>(t.isec());
  its.it_interval.tv_nsec = static_cast<long>(t.insec());
  bool armed = its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0;
  if (!armed && (its.it_interval.tv_sec != 0 || its.it_interval.tv_nsec != 0)) {
    // A periodic timer seen without its next expiry (an image written from
    // fdinfo alone): the next one is at most an interval away.
    its.it_value = its.it_interval;
    armed = true;
  }
  int flags = static_cast<int>(t.settime_flags());
  if (armed && (flags & TFD_TIMER_ABSTIME)) {
    timespec now;
    if (clock_gettime(ReadableClock(static_cast<clockid_t>(t.clockid())), &now) != 0) {
      return descriptions::Errno(what + ": clock_gettime");
    }
    its.it_value.tv_sec += now.tv_sec;
    its.it_value.tv_nsec += now.tv_nsec;
    if (its.it_value.tv_nsec >= kNsPerSec) {
      its.it_value.tv_nsec -= kNsPerSec;
      ++its.it_value.tv_sec;
    }
  }
  if (armed && timerfd_settime(fd, flags, &its, nullptr) != 0) {
    return descriptions::Errno(what + ": timerfd_settime");
  }
  uint64_t ticks = t.ticks();
  if (ticks != 0 && ioctl(fd, TFD_IOC_SET_TICKS, &ticks) != 0) {
    return descriptions::Errno(
        absl::StrFormat("%s: restoring %d unread ticks (TFD_IOC_SET_TICKS)", what, ticks));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TimerFd::Dump(DumpContext& ctx) {
  return descriptions::ForEachDescription(ctx, "anon_inode:[timerfd]", criu::TIMERFD, Describe);
}

absl::Status TimerFd::Restore(RestoreContext& ctx) {
  auto entries = descriptions::ReadEntries(ctx.images_dir, criu::TIMERFD);
  if (!entries.ok()) return entries.status();
  for (const criu::file_entry& f : *entries) {
    if (!f.has_tfd()) {
      return absl::DataLossError(absl::StrFormat("files.img: timerfd entry %d has no tfd", f.id()));
    }
    const criu::timerfd_entry& t = f.tfd();
    const std::string what = absl::StrFormat("timerfd (file id %d, clock %d)", f.id(), t.clockid());
    int fd = timerfd_create(static_cast<clockid_t>(t.clockid()),
                            TFD_CLOEXEC | (t.flags() & O_NONBLOCK ? TFD_NONBLOCK : 0));
    if (fd < 0) return descriptions::Errno(what + ": timerfd_create");
    if (auto s = Arm(fd, t, what); !s.ok()) {
      close(fd);
      return s;
    }
    if (auto s = ctx.Inherit(f.id(), fd); !s.ok()) return s;
    log::Debug("timerfd: file id %d: %d.%09d s left, interval %d.%09d s, %d ticks", f.id(),
               t.vsec(), t.vnsec(), t.isec(), t.insec(), t.ticks());
  }
  return absl::OkStatus();
}

}  // namespace crpp::resources
