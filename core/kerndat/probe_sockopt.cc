// Probes of socket options and ioctls: TCP repair mode, SO_PEEK_OFF,
// SO_BUF_LOCK, SIOCGSKNS, SIOCUNIXFILE, and the TUN device.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/un.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef SOCK_SNDBUF_LOCK
#define SOCK_SNDBUF_LOCK 1
#define SOCK_RCVBUF_LOCK 2
#endif

namespace crpp::kerndat::internal {
namespace {

int On(int fd, int level, int opt, int value) {
  return setsockopt(fd, level, opt, &value, sizeof(value));
}

ino_t InodeOfPath(const char* path) {
  struct stat st {};
  return stat(path, &st) == 0 ? st.st_ino : 0;
}

ino_t InodeOfFd(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// Brings the loopback device of the current network namespace up.
std::string LoopbackUp() {
  Fd sk(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sk.valid()) return ErrnoText("socket", errno);
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(sk.get(), SIOCGIFFLAGS, &ifr) != 0) return ErrnoText("SIOCGIFFLAGS lo", errno);
  if (ifr.ifr_flags & IFF_UP) return "";
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sk.get(), SIOCSIFFLAGS, &ifr) != 0) return ErrnoText("SIOCSIFFLAGS lo", errno);
  return "";
}

Result HalfClosedRepair() {
  Fd srv(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!srv.valid()) return FailErrno("TCP socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof(addr);
  if (bind(srv.get(), reinterpret_cast<sockaddr*>(&addr), alen) != 0) {
    return FailErrno("bind to 127.0.0.1", errno);
  }
  if (getsockname(srv.get(), reinterpret_cast<sockaddr*>(&addr), &alen) != 0 ||
      listen(srv.get(), 1) != 0) {
    return FailErrno("listen", errno);
  }
  Fd cl(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!cl.valid()) return FailErrno("TCP socket", errno);
  if (connect(cl.get(), reinterpret_cast<sockaddr*>(&addr), alen) != 0) {
    return FailErrno("connect over loopback", errno);
  }
  Fd peer(accept4(srv.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (shutdown(cl.get(), SHUT_WR) != 0) return FailErrno("shutdown(SHUT_WR)", errno);
  if (On(cl.get(), SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON) != 0) {
    return FailErrno("TCP_REPAIR on a half-closed connection", errno);
  }
  return Ok();
}

}  // namespace

Result ProbeTcpRepair() {
  Fd sk(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!sk.valid()) return FailErrno("TCP socket", errno);
  if (On(sk.get(), SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON) != 0)
    return FailErrno("TCP_REPAIR on", errno);
  int ts = 0;
  socklen_t len = sizeof(ts);
  if (getsockopt(sk.get(), SOL_TCP, TCP_TIMESTAMP, &ts, &len) != 0) {
    return FailErrno("TCP_TIMESTAMP", errno);
  }
  // What restore does before connect(): pick the send queue and set its sequence.
  if (On(sk.get(), SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) != 0) {
    return FailErrno("TCP_REPAIR_QUEUE", errno);
  }
  constexpr int kSeq = 0x1234567;
  if (On(sk.get(), SOL_TCP, TCP_QUEUE_SEQ, kSeq) != 0) return FailErrno("TCP_QUEUE_SEQ set", errno);
  int seq = 0;
  len = sizeof(seq);
  if (getsockopt(sk.get(), SOL_TCP, TCP_QUEUE_SEQ, &seq, &len) != 0) {
    return FailErrno("TCP_QUEUE_SEQ get", errno);
  }
  if (seq != kSeq) return Fail("TCP_QUEUE_SEQ did not read back what was set");
  return Ok("repair mode, queue sequence set and read back");
}

Result ProbeTcpRepairWindow() {
  Fd sk(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!sk.valid()) return FailErrno("TCP socket", errno);
  if (On(sk.get(), SOL_TCP, TCP_REPAIR, TCP_REPAIR_ON) != 0)
    return FailErrno("TCP_REPAIR on", errno);
  tcp_repair_window win{};
  socklen_t len = sizeof(win);
  if (getsockopt(sk.get(), SOL_TCP, TCP_REPAIR_WINDOW, &win, &len) != 0) {
    return FailErrno("TCP_REPAIR_WINDOW", errno);
  }
  return Ok();
}

Result ProbeTcpHalfClosed() {
  // Over the loopback of a network namespace of our own, so that neither the
  // host's network nor a sandbox without loopback matter.
  return InChild([]() -> Result {
    bool in_userns = false;
    if (UnshareWithFallback(CLONE_NEWNET, &in_userns).empty()) {
      std::string err = LoopbackUp();
      if (!err.empty()) return Fail(err);
    }
    return HalfClosedRepair();
  });
}

Result ProbeSockPeekOff() {
  Fd sk(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sk.valid()) return FailErrno("unix socket", errno);
  int off = 0;
  socklen_t len = sizeof(off);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_PEEK_OFF, &off, &len) != 0) {
    return FailErrno("SO_PEEK_OFF get", errno);
  }
  if (off != -1 || len != sizeof(int)) return Fail("SO_PEEK_OFF of a fresh socket is not -1");
  if (On(sk.get(), SOL_SOCKET, SO_PEEK_OFF, 5) != 0) return FailErrno("SO_PEEK_OFF set", errno);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_PEEK_OFF, &off, &len) != 0 || off != 5) {
    return Fail("SO_PEEK_OFF did not read back what was set");
  }
  return Ok();
}

Result ProbeSoGets() {
  Fd sk(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!sk.valid()) return FailErrno("UDP socket", errno);
  socklen_t len = 0;
  if (getsockopt(sk.get(), SOL_SOCKET, SO_GET_FILTER, nullptr, &len) != 0) {
    return FailErrno("SO_GET_FILTER", errno);
  }
  char name[IFNAMSIZ] = {};
  len = sizeof(name);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_BINDTODEVICE, name, &len) != 0) {
    return FailErrno("SO_BINDTODEVICE get", errno);
  }
  return Ok();
}

Result ProbeSockoptBufLock() {
  Fd sk(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!sk.valid()) return FailErrno("TCP socket", errno);
  const int want = SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK;
  if (On(sk.get(), SOL_SOCKET, SO_BUF_LOCK, want) != 0) return FailErrno("SO_BUF_LOCK set", errno);
  int got = 0;
  socklen_t len = sizeof(got);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_BUF_LOCK, &got, &len) != 0) {
    return FailErrno("SO_BUF_LOCK get", errno);
  }
  if (got != want) return Fail("SO_BUF_LOCK did not read back what was set");
  return Ok();
}

Result ProbeSkNs() {
  Fd sk(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sk.valid()) return FailErrno("unix socket", errno);
  Fd ns(ioctl(sk.get(), SIOCGSKNS));
  if (!ns.valid()) return FailErrno("ioctl(SIOCGSKNS)", errno);
  ino_t own = InodeOfPath("/proc/self/ns/net");
  if (own != 0 && InodeOfFd(ns.get()) != own) return Fail("SIOCGSKNS gave another namespace");
  return Ok();
}

Result ProbeSkUnixFile() {
  std::string dir = ScratchDir() + "/crpp-kerndat-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) return FailErrno("mkdtemp in " + ScratchDir(), errno);
  std::string path = dir + "/sk";
  Result result;
  {
    Fd sk(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (!sk.valid()) {
      result = FailErrno("unix socket", errno);
    } else if (path.size() >= sizeof(addr.sun_path)) {
      result = Fail("scratch path too long for a unix socket: " + path);
    } else {
      memcpy(addr.sun_path, path.c_str(), path.size() + 1);
      if (bind(sk.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        result = FailErrno("bind " + path, errno);
      } else {
        Fd file(ioctl(sk.get(), SIOCUNIXFILE));
        if (!file.valid()) {
          result = FailErrno("ioctl(SIOCUNIXFILE)", errno);
        } else if (InodeOfFd(file.get()) != InodeOfPath(path.c_str())) {
          result = Fail("SIOCUNIXFILE opened another file than the socket's");
        } else {
          result = Ok();
        }
      }
    }
  }
  unlink(path.c_str());
  rmdir(dir.c_str());
  return result;
}

Result ProbeTun() {
  Fd tun(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!tun.valid()) return FailErrno("/dev/net/tun", errno);
  unsigned int features = 0;
  if (ioctl(tun.get(), TUNGETFEATURES, &features) != 0) return FailErrno("TUNGETFEATURES", errno);
  if ((features & IFF_TUN) == 0) return Fail("the TUN device offers no IFF_TUN");
  return Ok(absl::StrFormat("features %#x", features));
}

Result ProbeTunNs() {
  // Creates a TUN device: in a child's own network namespace, which goes away
  // (and the device with it) when the child exits.
  return InChild([]() -> Result {
    bool in_userns = false;
    std::string err = UnshareWithFallback(CLONE_NEWNET, &in_userns);
    if (!err.empty()) return Fail("cannot make a network namespace to try it in: " + err);
    Fd tun(open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!tun.valid()) return FailErrno("/dev/net/tun", errno);
    ifreq ifr{};
    strncpy(ifr.ifr_name, "crpp-probe", IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (ioctl(tun.get(), TUNSETIFF, &ifr) != 0) return FailErrno("TUNSETIFF", errno);
    Fd ns(ioctl(tun.get(), TUNGETDEVNETNS));
    if (!ns.valid()) return FailErrno("TUNGETDEVNETNS", errno);
    if (InodeOfFd(ns.get()) != InodeOfPath("/proc/self/ns/net")) {
      return Fail("TUNGETDEVNETNS gave another namespace");
    }
    return Ok();
  });
}

}  // namespace crpp::kerndat::internal
