#include "resources/sockets/unix_diag.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace crpp::resources::unix_sk {
namespace {

absl::Status DiagError(const char* what) {
  return absl::InternalError(
      absl::StrFormat("sock_diag of UNIX sockets: %s: %s", what, strerror(errno)));
}

void ParseOne(const nlmsghdr* h, DiagTable& out) {
  const auto* msg = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
  DiagInfo d;
  d.ino = msg->udiag_ino;
  d.type = msg->udiag_type;
  d.state = msg->udiag_state;
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*msg)));
  for (auto* a = reinterpret_cast<const rtattr*>(msg + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    const char* data = static_cast<const char*>(RTA_DATA(a));
    size_t size = RTA_PAYLOAD(a);
    switch (a->rta_type) {
      case UNIX_DIAG_NAME:
        d.name.assign(data, size);
        if (!d.abstract()) {
          while (!d.name.empty() && d.name.back() == '\0') d.name.pop_back();
        }
        break;
      case UNIX_DIAG_VFS:
        if (size >= sizeof(unix_diag_vfs)) {
          unix_diag_vfs v;
          memcpy(&v, data, sizeof v);
          d.vfs_ino = v.udiag_vfs_ino;
          d.vfs_dev = v.udiag_vfs_dev;
        }
        break;
      case UNIX_DIAG_PEER:
        if (size >= sizeof(uint32_t)) memcpy(&d.peer, data, sizeof(uint32_t));
        break;
      case UNIX_DIAG_ICONS:
        for (size_t i = 0; i + sizeof(uint32_t) <= size; i += sizeof(uint32_t)) {
          uint32_t ino;
          memcpy(&ino, data + i, sizeof ino);
          d.icons.push_back(ino);
        }
        break;
      case UNIX_DIAG_RQLEN:
        if (size >= sizeof(unix_diag_rqlen)) {
          unix_diag_rqlen q;
          memcpy(&q, data, sizeof q);
          d.rqueue = q.udiag_rqueue;
          d.wqueue = q.udiag_wqueue;
        }
        break;
      case UNIX_DIAG_SHUTDOWN:
        if (size >= 1) d.shutdown = static_cast<uint8_t>(data[0]);
        break;
      default:
        break;
    }
  }
  for (uint32_t client : d.icons) out.waiting_in[client] = d.ino;
  out.sockets[d.ino] = std::move(d);
}

}  // namespace

absl::StatusOr<DiagTable> ListUnixSockets() {
  int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return DiagError("socket");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{nl};
  struct {
    nlmsghdr h;
    unix_diag_req r;
  } req{};
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.r.sdiag_family = AF_UNIX;
  req.r.udiag_states = ~0u;
  req.r.udiag_show =
      UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
  // UNIX_DIAG_SHUTDOWN comes with every answer (no flag asks for it).
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  if (sendto(nl, &req, sizeof req, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    return DiagError("sending the request");
  }
  DiagTable out;
  alignas(nlmsghdr) static thread_local char buf[64 * 1024];
  for (;;) {
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return DiagError("reading the answer");
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        errno = -e->error;
        return DiagError("the kernel refused the request");
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      ParseOne(h, out);
    }
  }
}

std::string PrintableName(const std::string& name) {
  if (name.empty()) return "(unbound)";
  if (name[0] != '\0') return name;
  std::string s = "@";
  for (size_t i = 1; i < name.size(); ++i) s += name[i] == '\0' ? '@' : name[i];
  return s;
}

}  // namespace crpp::resources::unix_sk
