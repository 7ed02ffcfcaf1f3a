// Probes of socket diagnostics: NETLINK_SOCK_DIAG dumps for the unix, inet,
// packet, netlink and raw families, and the RTM_GETNSID request.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/netlink_diag.h>
#include <linux/packet_diag.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

namespace crpp::kerndat::internal {
namespace {

struct DumpOutcome {
  int err = 0;         // errno of a failed dump, 0 if it was answered to the end
  int count = 0;       // sockets listed
  bool found = false;  // the socket looked for was among them
};

Fd NetlinkSocket(int protocol) {
  Fd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (fd.valid()) {
    timeval tv{5, 0};
    setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  return fd;
}

// Sends one netlink request (header + `payload`) and feeds every answer to
// `on_msg` until NLMSG_DONE, an error, or (for non-dumps) the first answer.
// Returns 0 or an errno.
template <typename OnMsg>
int Transact(int sk, uint16_t type, uint16_t flags, const void* payload, size_t len, OnMsg on_msg) {
  std::vector<char> req(NLMSG_SPACE(len));
  auto* nlh = reinterpret_cast<nlmsghdr*>(req.data());
  nlh->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(len));
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = 1;
  memcpy(NLMSG_DATA(nlh), payload, len);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(sk, req.data(), nlh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    return errno;
  }
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t n = recv(sk, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EPIPE;
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          int code = *static_cast<int*>(NLMSG_DATA(h));
          if (code < 0) return -code;
        }
        return 0;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        int code = static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
        return code < 0 ? -code : 0;  // an ack is an error of 0
      }
      on_msg(h);
      if ((flags & NLM_F_DUMP) == 0) return 0;
    }
  }
}

// Dumps one family and looks for inode `want` (0: look for nothing); the
// inode of a listed socket is the u32 at `ino_offset` of the answer.
template <typename Req>
DumpOutcome Dump(const Req& req, size_t ino_offset, ino_t want) {
  DumpOutcome out;
  Fd sk = NetlinkSocket(NETLINK_SOCK_DIAG);
  if (!sk.valid()) {
    out.err = errno;
    return out;
  }
  out.err =
      Transact(sk.get(), SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &req, sizeof(req), [&](nlmsghdr* h) {
        ++out.count;
        if (h->nlmsg_len < NLMSG_LENGTH(ino_offset + sizeof(uint32_t))) return;
        uint32_t ino = 0;
        memcpy(&ino, static_cast<char*>(NLMSG_DATA(h)) + ino_offset, sizeof(ino));
        if (want != 0 && ino == want) out.found = true;
      });
  return out;
}

ino_t InodeOf(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

// A socket of (family, type, protocol) bound to the wildcard address, listening
// if it is a stream; invalid if the kernel refuses one.
Fd BoundInetSocket(int family, int type, int protocol) {
  Fd fd(socket(family, type | SOCK_CLOEXEC, protocol));
  if (!fd.valid()) return fd;
  sockaddr_storage ss{};
  ss.ss_family = static_cast<sa_family_t>(family);
  socklen_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (type == SOCK_RAW) return fd;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return Fd();
  if (type == SOCK_STREAM && listen(fd.get(), 1) != 0) return Fd();
  return fd;
}

// Dumps an inet protocol with a socket of ours in it; "" or what went wrong.
std::string CheckInet(int family, int type, int protocol, const std::string& label,
                      std::vector<std::string>* answered) {
  Fd own = BoundInetSocket(family, type, protocol);
  if (!own.valid() && family == AF_INET6) return "";  // no IPv6 here: nothing to check
  inet_diag_req_v2 req{};
  req.sdiag_family = static_cast<uint8_t>(family);
  req.sdiag_protocol = static_cast<uint8_t>(type == SOCK_RAW ? IPPROTO_RAW : protocol);
  if (type == SOCK_RAW) req.pad = static_cast<uint8_t>(protocol);  // sdiag_raw_protocol
  req.idiag_states = ~0u;
  DumpOutcome r =
      Dump(req, offsetof(inet_diag_msg, idiag_inode), own.valid() ? InodeOf(own.get()) : 0);
  if (r.err == ENOENT) return ErrnoText(label + " (no diag handler in the kernel)", r.err);
  if (r.err != 0) return ErrnoText(label, r.err);
  if (own.valid() && !r.found) return absl::StrCat(label, ": our own socket is not listed");
  answered->push_back(label);
  return "";
}

}  // namespace

Result ProbeSockDiag() {
  std::vector<std::string> answered;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return FailErrno("socketpair", errno);
  }
  Fd a(pair[0]), b(pair[1]);
  unix_diag_req ureq{};
  ureq.sdiag_family = AF_UNIX;
  ureq.udiag_states = ~0u;
  DumpOutcome u = Dump(ureq, offsetof(unix_diag_msg, udiag_ino), InodeOf(a.get()));
  if (u.err != 0) return FailErrno("unix", u.err);
  if (!u.found) return Fail("unix: our own socket is not listed");
  answered.push_back("unix");

  struct {
    int family, type, protocol;
    const char* label;
  } const inet[] = {
      {AF_INET, SOCK_STREAM, IPPROTO_TCP, "tcp"},
      {AF_INET, SOCK_DGRAM, IPPROTO_UDP, "udp"},
      {AF_INET6, SOCK_STREAM, IPPROTO_TCP, "tcp6"},
      {AF_INET6, SOCK_DGRAM, IPPROTO_UDP, "udp6"},
  };
  for (const auto& p : inet) {
    std::string err = CheckInet(p.family, p.type, p.protocol, p.label, &answered);
    if (!err.empty()) return Fail(err);
  }
  return Ok(absl::StrJoin(answered, ", ") + " dumps list our sockets");
}

Result ProbePacketDiag() {
  Fd own(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  packet_diag_req req{};
  req.sdiag_family = AF_PACKET;
  DumpOutcome r =
      Dump(req, offsetof(packet_diag_msg, pdiag_ino), own.valid() ? InodeOf(own.get()) : 0);
  if (r.err != 0) return FailErrno("packet dump", r.err);
  if (own.valid() && !r.found) return Fail("our own packet socket is not listed");
  return Ok(absl::StrCat(r.count, " packet sockets listed"));
}

Result ProbeNetlinkDiag() {
  Fd own = NetlinkSocket(NETLINK_ROUTE);
  sockaddr_nl any{};
  any.nl_family = AF_NETLINK;
  if (!own.valid() || bind(own.get(), reinterpret_cast<sockaddr*>(&any), sizeof(any)) != 0) {
    return FailErrno("a NETLINK_ROUTE socket to look for", errno);
  }
  netlink_diag_req req{};
  req.sdiag_family = AF_NETLINK;
  req.sdiag_protocol = NDIAG_PROTO_ALL;
  DumpOutcome r = Dump(req, offsetof(netlink_diag_msg, ndiag_ino), InodeOf(own.get()));
  if (r.err != 0) return FailErrno("netlink dump", r.err);
  if (!r.found) return Fail("our own netlink socket is not listed");
  return Ok(absl::StrCat(r.count, " netlink sockets listed"));
}

Result ProbeNetDiagRaw() {
  std::vector<std::string> answered;
  std::string err = CheckInet(AF_INET, SOCK_RAW, IPPROTO_RAW, "raw", &answered);
  if (err.empty()) err = CheckInet(AF_INET6, SOCK_RAW, IPPROTO_RAW, "raw6", &answered);
  if (!err.empty()) return Fail(err);
  return Ok(absl::StrJoin(answered, ", ") + " dumps answered");
}

Result ProbeNsid() {
  Fd sk = NetlinkSocket(NETLINK_ROUTE);
  if (!sk.valid()) return FailErrno("NETLINK_ROUTE socket", errno);
  Fd ns(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return FailErrno("/proc/self/ns/net", errno);
  // rtgenmsg, padded, then a NETNSA_FD attribute.
  struct {
    rtgenmsg gen;
    char pad[NLMSG_ALIGN(sizeof(rtgenmsg)) - sizeof(rtgenmsg)];
    nlattr attr;
    uint32_t fd;
  } req{};
  req.gen.rtgen_family = AF_UNSPEC;
  req.attr.nla_len = NLA_HDRLEN + sizeof(uint32_t);
  req.attr.nla_type = NETNSA_FD;
  req.fd = static_cast<uint32_t>(ns.get());
  bool answered = false;
  int32_t nsid = 0;
  int err = Transact(sk.get(), RTM_GETNSID, 0, &req, sizeof(req), [&](nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWNSID) return;
    answered = true;
    int left = static_cast<int>(h->nlmsg_len) - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(rtgenmsg)));
    auto* a = reinterpret_cast<nlattr*>(static_cast<char*>(NLMSG_DATA(h)) +
                                        NLMSG_ALIGN(sizeof(rtgenmsg)));
    while (left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= left) {
      if (a->nla_type == NETNSA_NSID) memcpy(&nsid, reinterpret_cast<char*>(a) + NLA_HDRLEN, 4);
      int step = NLA_ALIGN(a->nla_len);
      left -= step;
      a = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(a) + step);
    }
  });
  if (err != 0) return FailErrno("RTM_GETNSID", err);
  if (!answered) return Fail("RTM_GETNSID got no RTM_NEWNSID answer");
  return Ok(nsid == NETNSA_NSID_NOT_ASSIGNED ? "own namespace has no nsid (as expected)"
                                             : absl::StrCat("nsid ", nsid));
}

}  // namespace crpp::kerndat::internal
