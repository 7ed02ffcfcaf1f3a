#include "resources/sockets/unix_queue.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace crpp::resources::unix_sk {
namespace {

absl::Status Errno(const std::string& what, const char* doing) {
  return absl::InternalError(absl::StrFormat("%s: %s: %s", what, doing, strerror(errno)));
}

// Closes the fds a peeked message carried into our process; true if there
// were any.
bool DropPassedFds(msghdr& m) {
  bool any = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      close(fd);
    }
    any = true;
  }
  return any || (m.msg_flags & MSG_CTRUNC);
}

// One MSG_PEEK at the socket's peek offset into `buf` (`len` bytes), with
// `extra` flags. Returns the count recv reports, -1 with errno.
ssize_t PeekOnce(int sock, char* buf, size_t len, int extra, bool& passed_fds) {
  iovec iov{buf, len};
  alignas(cmsghdr) char control[CMSG_SPACE(253 * sizeof(int)) + CMSG_SPACE(64)];
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | extra);
  } while (n < 0 && errno == EINTR);
  if (n >= 0 && DropPassedFds(m)) passed_fds = true;
  return n;
}

absl::StatusOr<std::vector<std::string>> PeekAll(int sock, int type, const std::string& what) {
  std::vector<std::string> out;
  bool passed_fds = false;
  if (type == SOCK_STREAM) {
    std::string all;
    std::string chunk(256 * 1024, '\0');
    for (;;) {
      ssize_t n = PeekOnce(sock, chunk.data(), chunk.size(), 0, passed_fds);
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) return Errno(what, "peeking at its queue");
      if (n == 0) break;  // the peer shut its end down: nothing more
      all.append(chunk.data(), static_cast<size_t>(n));
    }
    if (!all.empty()) out.push_back(std::move(all));
  } else {
    for (;;) {
      // The length of the next message first (MSG_TRUNC with no room moves
      // the peek offset by nothing), then the message itself.
      ssize_t len = PeekOnce(sock, nullptr, 0, MSG_TRUNC, passed_fds);
      if (len < 0 && errno == EAGAIN) break;
      if (len < 0) return Errno(what, "peeking at its queue");
      if (len == 0) {
        return absl::UnimplementedError(
            absl::StrFormat("%s: an empty message is queued: not supported yet", what));
      }
      std::string msg(static_cast<size_t>(len), '\0');
      ssize_t n = PeekOnce(sock, msg.data(), msg.size(), 0, passed_fds);
      if (n != len) {
        return absl::InternalError(absl::StrFormat("%s: peeked %d bytes of a %d-byte message (%s)",
                                                   what, n, len,
                                                   n < 0 ? strerror(errno) : "short"));
      }
      out.push_back(std::move(msg));
    }
  }
  if (passed_fds) {
    return absl::UnimplementedError(absl::StrFormat(
        "%s: a queued message carries file descriptors (SCM_RIGHTS): not supported yet", what));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> PeekQueue(int sock, int type, const std::string& what) {
  int old_off = -1;
  socklen_t len = sizeof old_off;
  if (getsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &old_off, &len) != 0) {
    return Errno(what, "reading SO_PEEK_OFF");
  }
  int zero = 0;
  if (setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) != 0) {
    return Errno(what, "setting SO_PEEK_OFF");
  }
  auto out = PeekAll(sock, type, what);
  // The socket is the target's: its peek offset goes back as it was.
  if (setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &old_off, sizeof old_off) != 0 && out.ok()) {
    return Errno(what, "putting SO_PEEK_OFF back");
  }
  return out;
}

absl::StatusOr<criu::sk_opts_entry> ReadOptions(int sock, const std::string& what) {
  auto get_int = [&](int opt, int& v) {
    socklen_t len = sizeof v;
    return getsockopt(sock, SOL_SOCKET, opt, &v, &len) == 0;
  };
  auto get_tv = [&](int opt, timeval& tv) {
    socklen_t len = sizeof tv;
    return getsockopt(sock, SOL_SOCKET, opt, &tv, &len) == 0;
  };
  int sndbuf, rcvbuf, passcred, passsec, priority, rcvlowat, mark;
  timeval snd{}, rcv{};
  if (!get_int(SO_SNDBUF, sndbuf) || !get_int(SO_RCVBUF, rcvbuf) || !get_tv(SO_SNDTIMEO, snd) ||
      !get_tv(SO_RCVTIMEO, rcv) || !get_int(SO_PASSCRED, passcred) ||
      !get_int(SO_PASSSEC, passsec) || !get_int(SO_PRIORITY, priority) ||
      !get_int(SO_RCVLOWAT, rcvlowat) || !get_int(SO_MARK, mark)) {
    return Errno(what, "reading its socket options");
  }
  criu::sk_opts_entry o;
  o.set_so_sndbuf(static_cast<uint32_t>(sndbuf));
  o.set_so_rcvbuf(static_cast<uint32_t>(rcvbuf));
  o.set_so_snd_tmo_sec(static_cast<uint64_t>(snd.tv_sec));
  o.set_so_snd_tmo_usec(static_cast<uint64_t>(snd.tv_usec));
  o.set_so_rcv_tmo_sec(static_cast<uint64_t>(rcv.tv_sec));
  o.set_so_rcv_tmo_usec(static_cast<uint64_t>(rcv.tv_usec));
  o.set_so_passcred(passcred != 0);
  o.set_so_passsec(passsec != 0);
  o.set_so_priority(static_cast<uint32_t>(priority));
  o.set_so_rcvlowat(static_cast<uint32_t>(rcvlowat));
  o.set_so_mark(static_cast<uint32_t>(mark));
  return o;
}

// Sets a buffer size as getsockopt reports it (the kernel doubles what it
// is given), past the sysctl limits with `forced` if need be.
absl::Status SetBuffer(int sock, int opt, int forced, uint32_t bytes, const std::string& what,
                       const char* name) {
  int half = static_cast<int>(bytes / 2), now = 0;
  socklen_t len = sizeof now;
  if (setsockopt(sock, SOL_SOCKET, opt, &half, sizeof half) == 0 &&
      getsockopt(sock, SOL_SOCKET, opt, &now, &len) == 0 && static_cast<uint32_t>(now) == bytes) {
    return absl::OkStatus();
  }
  if (setsockopt(sock, SOL_SOCKET, forced, &half, sizeof half) != 0) {
    return Errno(what, absl::StrFormat("setting %s to %d", name, bytes).c_str());
  }
  return absl::OkStatus();
}

absl::Status ApplyOptions(int sock, const criu::sk_opts_entry& o, const std::string& what) {
  auto set_int = [&](int opt, int v, const char* name) -> absl::Status {
    if (setsockopt(sock, SOL_SOCKET, opt, &v, sizeof v) != 0) {
      return Errno(what, absl::StrFormat("setting %s", name).c_str());
    }
    return absl::OkStatus();
  };
  auto set_tv = [&](int opt, uint64_t sec, uint64_t usec, const char* name) -> absl::Status {
    timeval tv{static_cast<time_t>(sec), static_cast<suseconds_t>(usec)};
    if (setsockopt(sock, SOL_SOCKET, opt, &tv, sizeof tv) != 0) {
      return Errno(what, absl::StrFormat("setting %s", name).c_str());
    }
    return absl::OkStatus();
  };
  absl::Status s = SetBuffer(sock, SO_SNDBUF, SO_SNDBUFFORCE, o.so_sndbuf(), what, "SO_SNDBUF");
  if (s.ok()) s = SetBuffer(sock, SO_RCVBUF, SO_RCVBUFFORCE, o.so_rcvbuf(), what, "SO_RCVBUF");
  if (s.ok()) s = set_tv(SO_SNDTIMEO, o.so_snd_tmo_sec(), o.so_snd_tmo_usec(), "SO_SNDTIMEO");
  if (s.ok()) s = set_tv(SO_RCVTIMEO, o.so_rcv_tmo_sec(), o.so_rcv_tmo_usec(), "SO_RCVTIMEO");
  if (s.ok() && o.so_passcred()) s = set_int(SO_PASSCRED, 1, "SO_PASSCRED");
  if (s.ok() && o.so_passsec()) s = set_int(SO_PASSSEC, 1, "SO_PASSSEC");
  if (s.ok() && o.so_priority() != 0) {
    s = set_int(SO_PRIORITY, static_cast<int>(o.so_priority()), "SO_PRIORITY");
  }
  if (s.ok() && o.so_rcvlowat() > 1) {
    s = set_int(SO_RCVLOWAT, static_cast<int>(o.so_rcvlowat()), "SO_RCVLOWAT");
  }
  if (s.ok() && o.so_mark() != 0) s = set_int(SO_MARK, static_cast<int>(o.so_mark()), "SO_MARK");
  return s;
}

}  // namespace crpp::resources::unix_sk
