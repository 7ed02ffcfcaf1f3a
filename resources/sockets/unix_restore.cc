// UnixSockets: the restore side (see unix.h).
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "fdinfo.pb.h"
#include "resources/sockets/unix.h"
#include "resources/sockets/unix_diag.h"
#include "resources/sockets/unix_queue.h"
#include "sk-packet.pb.h"

namespace crpp::resources {
namespace {

using unix_sk::PrintableName;

// CRIU's uflags bit for a socket outside the tree (not restored; ours
// connect to it by name).
constexpr uint32_t kUskExtern = 1;

struct Sock {
  const criu::unix_sk_entry* e = nullptr;
  int fd = -1;
  // The other end of a connection whose peer had closed: closed once the
  // queue is refilled, as the peer was.
  int partner = -1;
};

// Everything being made; on failure the fds are closed and the socket
// files bound here removed, so a failed restore leaves nothing behind.
struct Made {
  std::map<uint32_t, Sock> by_ino;
  // Sockets outside the tree (--external) some of ours connect to by name.
  std::map<uint32_t, const criu::unix_sk_entry*> external;
  std::vector<uint32_t> order;  // inodes in file id order
  std::vector<std::string> bound_paths;
  bool done = false;
  ~Made() {
    for (auto& [ino, s] : by_ino) {
      if (s.fd >= 0) close(s.fd);
      if (s.partner >= 0) close(s.partner);
    }
    if (done) return;
    for (const std::string& p : bound_paths) unlink(p.c_str());
  }
};

std::string What(const criu::unix_sk_entry& e) {
  return absl::StrFormat("UNIX socket %d (file id %d, %s)", e.ino(), e.id(),
                         PrintableName(e.name()));
}

absl::Status Errno(const criu::unix_sk_entry& e, const std::string& doing) {
  return absl::InternalError(absl::StrFormat("%s: %s: %s", What(e), doing, strerror(errno)));
}

socklen_t Address(const std::string& name, sockaddr_un& a) {
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  size_t n = std::min(name.size(), sizeof a.sun_path);
  memcpy(a.sun_path, name.data(), n);
  // A path's length counts its NUL; an abstract name's is exactly its bytes.
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n +
                                (name[0] == '\0' || n == sizeof a.sun_path ? 0 : 1));
}

absl::StatusOr<int> NewSocket(const criu::unix_sk_entry& e) {
  int fd = socket(AF_UNIX, static_cast<int>(e.type()) | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno(e, "socket");
  return fd;
}

// True if a socket of `type` answers at `path` (a live one, not a stale
// file left by a socket that closed).
bool Answers(const std::string& path, uint32_t type) {
  int probe = socket(AF_UNIX, static_cast<int>(type) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) return false;
  sockaddr_un a;
  socklen_t len = Address(path, a);
  int r = connect(probe, reinterpret_cast<sockaddr*>(&a), len);
  int err = errno;
  close(probe);
  return r == 0 || err == EAGAIN;
}

// Binds `fd` to the entry's name, replacing a stale socket file at its path
// (not a live socket's) and giving the file its mode and owner back.
absl::Status Bind(Made& m, int fd, const criu::unix_sk_entry& e) {
  const std::string& name = e.name();
  if (name.empty()) return absl::OkStatus();
  if (name.size() > sizeof(sockaddr_un::sun_path)) {
    return absl::DataLossError(absl::StrFormat("%s: name too long", What(e)));
  }
  bool path = name[0] != '\0';
  if (path) {
    struct stat st;
    if (lstat(name.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s: %s exists and is not a socket", What(e), name));
      }
      if (Answers(name, e.type())) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s: a live socket is bound to %s", What(e), name));
      }
      if (unlink(name.c_str()) != 0) return Errno(e, "removing the stale socket file");
    }
  }
  sockaddr_un a;
  socklen_t len = Address(name, a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) return Errno(e, "bind");
  if (!path) return absl::OkStatus();
  m.bound_paths.push_back(name);
  if (e.has_file_perms()) {
    const auto& p = e.file_perms();
    if (chmod(name.c_str(), p.mode() & 07777) != 0 || lchown(name.c_str(), p.uid(), p.gid()) != 0) {
      return Errno(e, "setting the socket file's mode and owner");
    }
  }
  return absl::OkStatus();
}

absl::Status Connect(int fd, const criu::unix_sk_entry& e, const std::string& to) {
  sockaddr_un a;
  socklen_t len = Address(to, a);
  // Non-blocking: a full queue of connections fails instead of waiting.
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int r = connect(fd, reinterpret_cast<sockaddr*>(&a), len);
  int err = errno;
  fcntl(fd, F_SETFL, fl);
  errno = err;
  if (r != 0) return Errno(e, "connecting to " + PrintableName(to));
  return absl::OkStatus();
}

// A connection to `listener` made and accepted: the connecting end in
// `client` (bound first to `bind_as`'s name if given and named), the
// accepted one in `accepted`.
absl::Status ConnectAndAccept(Made& m, const Sock& listener, const criu::unix_sk_entry* bind_as,
                              int& client, int& accepted) {
  const criu::unix_sk_entry& le = *listener.e;
  auto fd = NewSocket(le);
  if (!fd.ok()) return fd.status();
  client = *fd;
  if (bind_as != nullptr) {
    if (auto s = Bind(m, client, *bind_as); !s.ok()) return s;
  }
  if (auto s = Connect(client, bind_as != nullptr ? *bind_as : le, le.name()); !s.ok()) return s;
  accepted = accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (accepted < 0) return Errno(*listener.e, "accepting a connection again");
  int fl = fcntl(accepted, F_GETFL);
  fcntl(accepted, F_SETFL, fl & ~O_NONBLOCK);
  return absl::OkStatus();
}

Sock* ListenerFor(Made& m, const criu::unix_sk_entry& e) {
  if (e.name().empty()) return nullptr;
  for (auto& [ino, l] : m.by_ino) {
    if (l.e->state() == TCP_LISTEN && l.e->type() == e.type() && l.e->name() == e.name()) return &l;
  }
  return nullptr;
}

Sock* Find(Made& m, uint32_t ino) {
  auto it = m.by_ino.find(ino);
  return it == m.by_ino.end() ? nullptr : &it->second;
}

// A connected stream or seqpacket socket and its peer (null if the peer had
// closed), made again.
absl::Status MakeConnection(Made& m, Sock& x, Sock* y) {
  const criu::unix_sk_entry& e = *x.e;
  Sock* lx = ListenerFor(m, e);
  Sock* ly = y != nullptr ? ListenerFor(m, *y->e) : nullptr;
  if (y == nullptr) {
    if (lx != nullptr) return ConnectAndAccept(m, *lx, nullptr, x.partner, x.fd);
    if (!e.name().empty()) {
      return absl::DataLossError(absl::StrFormat("%s: no listening socket for its name", What(e)));
    }
    int sv[2];
    if (socketpair(AF_UNIX, static_cast<int>(e.type()) | SOCK_CLOEXEC, 0, sv) != 0) {
      return Errno(e, "socketpair");
    }
    x.fd = sv[0];
    x.partner = sv[1];
    return absl::OkStatus();
  }
  if (lx != nullptr) return ConnectAndAccept(m, *lx, y->e, y->fd, x.fd);
  if (ly != nullptr) return ConnectAndAccept(m, *ly, &e, x.fd, y->fd);
  if (!e.name().empty() || !y->e->name().empty()) {
    return absl::DataLossError(
        absl::StrFormat("%s: connected to %s, but neither was accepted from a listening socket",
                        What(e), What(*y->e)));
  }
  int sv[2];
  if (socketpair(AF_UNIX, static_cast<int>(e.type()) | SOCK_CLOEXEC, 0, sv) != 0) {
    return Errno(e, "socketpair");
  }
  x.fd = sv[0];
  y->fd = sv[1];
  return absl::OkStatus();
}

absl::Status MakeAll(Made& m) {
  // Listening sockets first: the others connect to them.
  for (uint32_t ino : m.order) {
    Sock& s = m.by_ino[ino];
    if (s.e->state() != TCP_LISTEN) continue;
    auto fd = NewSocket(*s.e);
    if (!fd.ok()) return fd.status();
    s.fd = *fd;
    if (auto st = Bind(m, s.fd, *s.e); !st.ok()) return st;
    if (listen(s.fd, static_cast<int>(s.e->backlog())) != 0) return Errno(*s.e, "listen");
  }
  // Connections (accepted ones connect and are accepted at once, before
  // any connection is left waiting), then the datagram and idle sockets.
  for (uint32_t ino : m.order) {
    Sock& s = m.by_ino[ino];
    const criu::unix_sk_entry& e = *s.e;
    if (s.fd >= 0 || e.state() != TCP_ESTABLISHED || e.type() == SOCK_DGRAM) continue;
    Sock* peer = Find(m, e.peer());
    if (peer != nullptr && peer->e->state() == TCP_LISTEN) continue;  // waits; below
    if (peer == nullptr && e.peer() != 0) {
      return absl::DataLossError(
          absl::StrFormat("%s: its peer %d is not in the image", What(e), e.peer()));
    }
    if (auto st = MakeConnection(m, s, peer); !st.ok()) return st;
  }
  for (uint32_t ino : m.order) {
    Sock& s = m.by_ino[ino];
    const criu::unix_sk_entry& e = *s.e;
    if (s.fd >= 0) continue;
    Sock* peer = Find(m, e.peer());
    if (e.type() == SOCK_DGRAM && peer != nullptr && peer->fd < 0 && peer->e->peer() == ino &&
        e.name().empty() && peer->e->name().empty()) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return Errno(e, "socketpair");
      }
      s.fd = sv[0];
      peer->fd = sv[1];
      continue;
    }
    auto fd = NewSocket(e);
    if (!fd.ok()) return fd.status();
    s.fd = *fd;
    if (auto st = Bind(m, s.fd, e); !st.ok()) return st;
  }
  // Datagram sockets connect by name once all are bound; connections
  // waiting in a listening socket's queue connect in that queue's order.
  for (uint32_t ino : m.order) {
    Sock& s = m.by_ino[ino];
    const criu::unix_sk_entry& e = *s.e;
    Sock* peer = Find(m, e.peer());
    if (auto x = m.external.find(e.peer()); x != m.external.end() && e.type() == SOCK_DGRAM) {
      if (auto st = Connect(s.fd, e, x->second->name()); !st.ok()) return st;
      continue;
    }
    if (peer == nullptr || e.state() != TCP_ESTABLISHED) continue;
    if (e.type() == SOCK_DGRAM) {
      if (peer->e->name().empty()) continue;  // a socketpair, connected already
      if (auto st = Connect(s.fd, e, peer->e->name()); !st.ok()) return st;
    } else if (peer->e->state() == TCP_LISTEN) {
      if (auto st = Connect(s.fd, e, peer->e->name()); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<uint32_t, std::vector<std::string>>> ReadQueues(const std::string& dir) {
  std::map<uint32_t, std::vector<std::string>> out;
  std::string path = dir + "/sk-queues.img";
  if (access(path.c_str(), F_OK) != 0) return out;
  auto r = images::ImageReader::Open(path, images::FindKindByName("SK_QUEUES"));
  if (!r.ok()) return r.status();
  criu::sk_packet_entry pe;
  for (;;) {
    auto more = (*r)->Next(pe);
    if (!more.ok()) return more.status();
    if (!*more) break;
    std::string bytes;
    if (auto s = (*r)->ReadPayload(pe.length(), bytes); !s.ok()) return s;
    out[pe.id_for()].push_back(std::move(bytes));
  }
  return out;
}

// Puts the messages back into `r`'s receive queue by sending them from its
// peer (or the end standing for a peer that closed, or for a datagram
// socket anyone may send to, a socket of ours).
absl::Status Refill(Made& m, Sock& r, const std::vector<std::string>& packets) {
  const criu::unix_sk_entry& e = *r.e;
  int from = r.partner;
  int own = -1;
  Sock* peer = Find(m, e.peer());
  if (from < 0 && peer != nullptr && peer->e->state() != TCP_LISTEN) from = peer->fd;
  if (from < 0 && e.type() == SOCK_DGRAM) {
    for (auto& [ino, o] : m.by_ino) {
      if (o.e->peer() == e.ino() && o.e->type() == SOCK_DGRAM) from = o.fd;
    }
    if (from < 0 && !e.name().empty()) {
      own = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (own < 0) return Errno(e, "a socket to refill its queue from");
      if (auto s = Connect(own, e, e.name()); !s.ok()) {
        close(own);
        return s;
      }
      from = own;
    }
  }
  if (from < 0) {
    return absl::DataLossError(absl::StrFormat(
        "%s: %d messages queued, but no socket can send them", What(e), packets.size()));
  }
  absl::Status status;
  // Room for the whole queue on the sending side (its own size comes back
  // with the options).
  int big = 64 << 20;
  setsockopt(from, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
  for (const std::string& p : packets) {
    size_t off = 0;
    while (status.ok() && off < p.size()) {
      ssize_t n = send(from, p.data() + off, p.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || (e.type() != SOCK_STREAM && static_cast<size_t>(n) != p.size())) {
        status = Errno(
            e, absl::StrFormat("refilling its queue (%d of %d bytes of a message)", n, p.size()));
        break;
      }
      off += static_cast<size_t>(n);
    }
    if (!status.ok()) break;
  }
  if (own >= 0) close(own);
  return status;
}

}  // namespace

absl::Status UnixSockets::Restore(RestoreContext& ctx) {
  auto files = images::ReadAll<criu::file_entry>(ctx.images_dir + "/files.img", images::Files());
  if (!files.ok()) return files.status();
  Made m;
  for (const auto& f : *files) {
    if (f.type() != criu::UNIXSK) continue;
    if (!f.has_usk()) {
      return absl::DataLossError(absl::StrFormat("files.img: entry %d has no usk", f.id()));
    }
    const criu::unix_sk_entry& e = f.usk();
    if (e.name().empty() && e.state() == TCP_LISTEN) {
      return absl::DataLossError(absl::StrFormat("%s: listening but unbound", What(e)));
    }
    if (e.uflags() & kUskExtern) {
      m.external[e.ino()] = &e;
      continue;
    }
    m.by_ino[e.ino()].e = &e;
    m.order.push_back(e.ino());
  }
  if (m.order.empty()) return absl::OkStatus();
  auto queues = ReadQueues(ctx.images_dir);
  if (!queues.ok()) return queues.status();
  if (auto s = MakeAll(m); !s.ok()) return s;
  for (uint32_t ino : m.order) {
    Sock& s = m.by_ino[ino];
    auto q = queues->find(s.e->id());
    if (q == queues->end()) continue;
    if (auto st = Refill(m, s, q->second); !st.ok()) return st;
  }
  for (uint32_t ino : m.order) {
    Sock& s = m.by_ino[ino];
    const criu::unix_sk_entry& e = *s.e;
    if (s.partner >= 0) {
      close(s.partner);  // its peer had closed: so does this one
      s.partner = -1;
    } else if (e.has_shutdown() && e.shutdown() != criu::NONE) {
      int how = e.shutdown() == criu::READ    ? SHUT_RD
                : e.shutdown() == criu::WRITE ? SHUT_WR
                                              : SHUT_RDWR;
      if (shutdown(s.fd, how) != 0) return Errno(e, "shutdown");
    }
    if (auto st = unix_sk::ApplyOptions(s.fd, e.opts(), What(e)); !st.ok()) return st;
    if (fcntl(s.fd, F_SETFL, e.flags() & O_NONBLOCK) != 0) return Errno(e, "setting its flags");
  }
  for (uint32_t ino : m.order) {
    Sock& s = m.by_ino[ino];
    int fd = s.fd;
    s.fd = -1;  // Inherit takes it, whatever happens
    if (auto st = ctx.Inherit(s.e->id(), fd); !st.ok()) return st;
  }
  m.done = true;
  log::Info("unix: %d sockets restored", m.order.size());
  return absl::OkStatus();
}

}  // namespace crpp::resources
