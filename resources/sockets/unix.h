// UNIX sockets (files.img entries of type UNIXSK with their unix_sk_entry,
// sk-queues.img for the messages queued in them): socketpairs and sockets
// connected between tasks of the tree, stream, datagram and seqpacket; bound
// ones (path or abstract name); listening ones with the connections queued
// but not accepted yet; the bytes or messages each one holds unread, its
// shutdown state, O_NONBLOCK and SOL_SOCKET options.
//
// Dump: sock_diag tells each socket's type, state, peer, name and pending
// connections; the fds of the tree are matched by inode. A copy of each
// socket (pidfd_getfd) gives its options and lets its queue be read in
// place (MSG_PEEK from SO_PEEK_OFF 0). Refused, naming the pid, fd and
// socket: a peer outside the tree (or a connection from outside waiting in
// a listening socket), a name relative to a working directory, a queued
// message carrying fds, data sent into a connection nobody accepted yet, a
// connection accepted from a listening socket that is gone.
//
// Restore (in the root, before the others are forked): listening sockets
// are bound (a stale socket file at the path is removed) and listen; each
// accepted connection is connected to its listening socket again and
// accepted; socketpairs are made again with socketpair(); pending
// connections are connected last, in their queue's order; datagram sockets
// are bound and connected by name. Queues are refilled through each
// socket's peer, then shutdowns, options and flags applied, and every socket
// is handed to the fds plugin (RestoreContext::Inherit).
#ifndef CRPP_RESOURCES_SOCKETS_UNIX_H_
#define CRPP_RESOURCES_SOCKETS_UNIX_H_

#include <string_view>

#include "absl/status/status.h"
#include "core/registry.h"
#include "resources/tree/tree.h"

namespace crpp::resources {

struct UnixSockets {
  static constexpr std::string_view kName = "unix";
  static constexpr Stage kStage = Stage::kShared;
  static constexpr Scope kScope = Scope::kTree;
  static constexpr std::string_view kImages[] = {"SK_QUEUES"};
  using Depends = DependsOn<Tree>;
  // Refuses what cannot be dumped before the tree is stopped.
  static absl::Status Precheck(DumpContext& ctx);
  static absl::Status Dump(DumpContext& ctx);
  static absl::Status Restore(RestoreContext& ctx);
};

}  // namespace crpp::resources

#endif  // CRPP_RESOURCES_SOCKETS_UNIX_H_
