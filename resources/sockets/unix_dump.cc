// UnixSockets: the dump side (see unix.h).
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "fdinfo.pb.h"
#include "resources/common/descriptions.h"
#include "resources/sockets/unix.h"
#include "resources/sockets/unix_diag.h"
#include "resources/sockets/unix_queue.h"
#include "sk-packet.pb.h"

namespace crpp::resources {
namespace {

using unix_sk::DiagInfo;
using unix_sk::PrintableName;

struct Holder {
  pid_t pid;
  int fd;
};

// A UNIX socket some task of the tree holds.
struct HeldSocket {
  DiagInfo d;
  std::vector<Holder> holders;  // in tree order
  uint32_t file_flags = 0;      // of the open description (one per socket)
  // The peer written to the image: the listening socket for a connection
  // waiting in its queue, else the kernel's peer.
  uint32_t peer = 0;
  size_t pending_rank = 0;  // place in the listening socket's queue
  // A datagram socket connected to one outside the tree (--external).
  std::optional<DiagInfo> external_peer;
};

// UNIX sockets that are not ours but that --external lets sockets of
// ours be connected to: the flag CRIU marks them with (uflags).
constexpr uint32_t kUskExtern = 1;

// `--external unix[INO]` names the socket of the tree or its peer outside.
bool ExternalAllowed(const DumpContext& ctx, uint32_t ino, uint32_t peer) {
  for (const std::string& e : ctx.external) {
    if (e == absl::StrFormat("unix[%d]", ino) || e == absl::StrFormat("unix[%d]", peer)) {
      return true;
    }
  }
  return false;
}

using Sockets = std::map<uint32_t, HeldSocket>;

uint32_t SocketInode(const std::string& link) {
  if (link.rfind("socket:[", 0) != 0 || link.back() != ']') return 0;
  return static_cast<uint32_t>(strtoul(link.c_str() + 8, nullptr, 10));
}

std::string Describe(const HeldSocket& s) {
  const Holder& h = s.holders.front();
  return absl::StrFormat("pid %d fd %d (UNIX socket %d, %s)", h.pid, h.fd, s.d.ino,
                         PrintableName(s.d.name));
}

absl::Status Refuse(const HeldSocket& s, const std::string& why) {
  return absl::UnimplementedError(absl::StrFormat("%s: %s", Describe(s), why));
}

// The held listening socket a connection `s` was accepted from: one of the
// same type bound to the same name (an accepted socket carries its
// listener's address), or null.
const HeldSocket* ListenerOf(const Sockets& all, const HeldSocket& s) {
  if (s.d.name.empty()) return nullptr;
  for (const auto& [ino, l] : all) {
    if (l.d.state == TCP_LISTEN && l.d.type == s.d.type && l.d.name == s.d.name) return &l;
  }
  return nullptr;
}

// Every UNIX socket of the tree, checked: what cannot be restored is refused.
absl::StatusOr<Sockets> Collect(DumpContext& ctx) {
  auto diag = unix_sk::ListUnixSockets();
  if (!diag.ok()) return diag.status();
  Sockets all;
  absl::Status walked =
      ctx.ForEachTreeFd([&](pid_t pid, const DumpContext::OpenFd& open) -> absl::Status {
        const int fd = open.fd;
        uint32_t ino = SocketInode(open.link);
        if (ino == 0) return absl::OkStatus();
        auto d = diag->sockets.find(ino);
        if (d == diag->sockets.end()) {
          // Not a UNIX socket of our network namespace: another family is
          // the fds plugin's to refuse; a UNIX one elsewhere is refused here.
          char proto[32] = {0};
          std::string path = absl::StrFormat("/proc/%d/fd/%d", pid, fd);
          if (getxattr(path.c_str(), "system.sockprotoname", proto, sizeof proto - 1) > 0 &&
              std::string_view(proto).starts_with("UNIX")) {
            return absl::UnimplementedError(absl::StrFormat(
                "pid %d fd %d: UNIX socket %d is not in the dumper's network namespace: not "
                "supported yet",
                pid, fd, ino));
          }
          return absl::OkStatus();
        }
        HeldSocket& s = all[ino];
        if (s.holders.empty()) {
          auto info = DumpContext::InfoOf(pid, open);
          if (!info.ok()) return info.status();
          s.d = d->second;
          s.file_flags = info->flags;
          s.peer = s.d.peer;
        }
        s.holders.push_back({pid, fd});
        return absl::OkStatus();
      });
  if (!walked.ok()) return walked;
  // Listening sockets first: the connections waiting in their queues.
  for (auto& [ino, s] : all) {
    const DiagInfo& d = s.d;
    if (!d.name.empty() && !d.abstract() && d.name[0] != '/') {
      return Refuse(s, "bound to a path relative to its working directory: not supported yet");
    }
    if (d.type != SOCK_STREAM && d.type != SOCK_DGRAM && d.type != SOCK_SEQPACKET) {
      return Refuse(s, absl::StrFormat("of socket type %d: not supported", d.type));
    }
    if (d.state != TCP_LISTEN) continue;
    for (size_t i = 0; i < d.icons.size(); ++i) {
      auto client = all.find(d.icons[i]);
      if (client == all.end()) {
        return Refuse(s, absl::StrFormat("socket %d, outside the dumped tree, waits in its "
                                         "queue of connections: not supported",
                                         d.icons[i]));
      }
      // Bytes sent into a connection not accepted yet sit in a socket that
      // has no fd to read them from.
      if (client->second.d.wqueue != 0) {
        return Refuse(client->second,
                      absl::StrFormat("sent data into a connection %s has not accepted yet: "
                                      "not supported yet",
                                      Describe(s)));
      }
      client->second.peer = ino;
      client->second.pending_rank = i + 1;
    }
  }
  for (auto& [ino, s] : all) {
    const DiagInfo& d = s.d;
    if (d.state == TCP_LISTEN || s.pending_rank != 0) continue;
    if (d.state != TCP_ESTABLISHED && d.state != TCP_CLOSE) {
      return Refuse(s, absl::StrFormat("in socket state %d: not supported", d.state));
    }
    if (d.peer == 0) {
      if (auto l = diag->waiting_in.find(ino); l != diag->waiting_in.end()) {
        auto listener = diag->sockets.find(l->second);
        return Refuse(
            s, absl::StrFormat(
                   "connected to the listening socket %d (%s), which no task of the "
                   "dumped tree holds, and not accepted yet: external UNIX sockets are "
                   "not supported yet",
                   l->second,
                   listener == diag->sockets.end() ? "?" : PrintableName(listener->second.name)));
      }
      // Connected to a socket with no inode: a connection not accepted yet
      // in a listening socket we cannot see, unless the peer closed (then
      // both directions are shut down).
      if (d.state == TCP_ESTABLISHED && d.type != SOCK_DGRAM && d.shutdown != 3) {
        return Refuse(s,
                      "connected to a listening socket outside the dumped tree, not accepted "
                      "yet: external UNIX sockets are not supported yet");
      }
      // A stream socket whose peer closed: made again with a peer that
      // closes, or accepted from its listening socket again.
      if (d.state == TCP_ESTABLISHED && d.type != SOCK_DGRAM && !d.name.empty() &&
          ListenerOf(all, s) == nullptr) {
        return Refuse(s, "accepted from a listening socket that is closed: not supported yet");
      }
      continue;
    }
    auto peer = all.find(d.peer);
    if (peer == all.end()) {
      auto outside = diag->sockets.find(d.peer);
      // A datagram socket can be connected again by name to a bound one.
      bool by_name =
          d.type == SOCK_DGRAM && outside != diag->sockets.end() && !outside->second.name.empty();
      if (by_name && ExternalAllowed(ctx, ino, d.peer)) {
        s.external_peer = outside->second;
        continue;
      }
      return Refuse(
          s, absl::StrFormat(
                 "connected to socket %d (%s), which no task of the dumped tree holds: %s", d.peer,
                 outside == diag->sockets.end() ? "gone" : PrintableName(outside->second.name),
                 by_name ? absl::StrFormat("dump with --external unix[%d] to connect to it again "
                                           "by name at restore",
                                           d.peer)
                         : std::string("external UNIX sockets are not supported yet")));
    }
    const HeldSocket& p = peer->second;
    if (d.type == SOCK_DGRAM) {
      bool pair = p.d.peer == ino && d.name.empty() && p.d.name.empty();
      if (!pair && p.d.name.empty()) {
        return Refuse(s, "connected to an unbound datagram socket: not supported");
      }
      continue;
    }
    if (ListenerOf(all, s) == nullptr && ListenerOf(all, p) == nullptr &&
        !(d.name.empty() && p.d.name.empty())) {
      return Refuse(s, absl::StrFormat("a connection to %s accepted from a listening socket "
                                       "that is closed: not supported yet",
                                       Describe(p)));
    }
  }
  return all;
}

// The image entry of `s`, with its options and queue read through a copy.
absl::StatusOr<criu::file_entry> Entry(const HeldSocket& s, std::vector<std::string>& queue) {
  const Holder& h = s.holders.front();
  const std::string what = Describe(s);
  auto copy = descriptions::CopyFd(h.pid, h.fd);
  if (!copy.ok()) return copy.status();
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{*copy};
  auto opts = unix_sk::ReadOptions(*copy, what);
  if (!opts.ok()) return opts.status();
  if (s.d.state != TCP_LISTEN) {
    auto q = unix_sk::PeekQueue(*copy, s.d.type, what);
    if (!q.ok()) return q.status();
    queue = std::move(*q);
  }
  if (s.external_peer && !queue.empty()) {
    // Only its peer may send to it, and that one is not ours.
    return absl::UnimplementedError(absl::StrFormat(
        "%s: %d messages queued in a socket connected outside the tree: not supported yet", what,
        queue.size()));
  }
  criu::file_entry e;
  e.set_type(criu::UNIXSK);
  e.set_id(0);
  auto* u = e.mutable_usk();
  u->set_id(0);
  u->set_ino(s.d.ino);
  u->set_type(s.d.type);
  u->set_state(s.d.state);
  u->set_flags(s.file_flags & ~O_CLOEXEC);
  u->set_uflags(0);
  u->set_backlog(s.d.state == TCP_LISTEN ? s.d.wqueue : 0);
  u->set_peer(s.peer);
  SetNoOwner(*u->mutable_fown());
  *u->mutable_opts() = *opts;
  u->set_name(s.d.name);
  if (s.d.shutdown != 0) u->set_shutdown(static_cast<criu::sk_shutdown>(s.d.shutdown & 3));
  struct stat st;
  if (!s.d.name.empty() && !s.d.abstract() && lstat(s.d.name.c_str(), &st) == 0 &&
      st.st_ino == s.d.vfs_ino && S_ISSOCK(st.st_mode)) {
    auto* perms = u->mutable_file_perms();
    perms->set_mode(st.st_mode);
    perms->set_uid(st.st_uid);
    perms->set_gid(st.st_gid);
  }
  return e;
}

}  // namespace

absl::Status UnixSockets::Precheck(DumpContext& ctx) { return Collect(ctx).status(); }

absl::Status UnixSockets::Dump(DumpContext& ctx) {
  const images::ImageKind* kind = images::FindKindByName("SK_QUEUES");
  if (kind == nullptr) return absl::InternalError("no SK_QUEUES image kind");
  // Written even when empty: a tree without queued data has an empty image.
  auto queues = images::ImageWriter::Create(ctx.images_dir + "/sk-queues.img", *kind);
  if (!queues.ok()) return queues.status();
  auto all = Collect(ctx);
  if (!all.ok()) return all.status();
  // Ids in an order restore follows: connections waiting in a listening
  // socket's queue come after the rest, in their queue's order.
  std::vector<const HeldSocket*> order;
  for (const auto& [ino, s] : *all) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [](const HeldSocket* a, const HeldSocket* b) {
    return a->pending_rank < b->pending_rank;
  });
  std::set<uint32_t> outside;  // external peers written
  for (const HeldSocket* s : order) {
    if (!s->external_peer || !outside.insert(s->external_peer->ino).second) continue;
    // The socket outside, by name, for restore to connect to.
    const DiagInfo& x = *s->external_peer;
    criu::file_entry e;
    e.set_type(criu::UNIXSK);
    e.set_id(0);
    auto* u = e.mutable_usk();
    u->set_id(0);
    u->set_ino(x.ino);
    u->set_type(x.type);
    u->set_state(x.state);
    u->set_flags(0);
    u->set_uflags(kUskExtern);
    u->set_backlog(0);
    u->set_peer(x.peer);
    SetNoOwner(*u->mutable_fown());
    auto* o = u->mutable_opts();
    o->set_so_sndbuf(0);
    o->set_so_rcvbuf(0);
    o->set_so_snd_tmo_sec(0);
    o->set_so_snd_tmo_usec(0);
    o->set_so_rcv_tmo_sec(0);
    o->set_so_rcv_tmo_usec(0);
    u->set_name(x.name);
    ctx.files->Add(std::move(e));
    log::Info("unix: socket %d (%s) outside the tree, external", x.ino, PrintableName(x.name));
  }
  for (const HeldSocket* s : order) {
    std::vector<std::string> queue;
    auto e = Entry(*s, queue);
    if (!e.ok()) return e.status();
    uint32_t id = ctx.files->Add(std::move(*e));
    for (const Holder& h : s->holders) ctx.fd_ids[{h.pid, h.fd}] = {id, criu::UNIXSK};
    size_t bytes = 0;
    for (const std::string& packet : queue) {
      criu::sk_packet_entry pe;
      pe.set_id_for(id);
      pe.set_length(static_cast<uint32_t>(packet.size()));
      if (auto st = (*queues)->Write(pe); !st.ok()) return st;
      if (auto st = (*queues)->WritePayload(packet); !st.ok()) return st;
      bytes += packet.size();
    }
    log::Info("unix: %s: type %d state %d peer %d, %d holders, %d messages (%d bytes) queued",
              Describe(*s), s->d.type, s->d.state, s->peer, s->holders.size(), queue.size(), bytes);
  }
  return (*queues)->Close();
}

}  // namespace crpp::resources
