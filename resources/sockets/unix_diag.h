// What the kernel says about every UNIX socket of our network namespace,
// through sock_diag (NETLINK_SOCK_DIAG, AF_UNIX): type, state, peer, name,
// the socket file's inode, pending connections, queue lengths, shutdown.
#ifndef CRPP_RESOURCES_SOCKETS_UNIX_DIAG_H_
#define CRPP_RESOURCES_SOCKETS_UNIX_DIAG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::resources::unix_sk {

struct DiagInfo {
  uint32_t ino = 0;
  uint8_t type = 0;   // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  uint8_t state = 0;  // TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE
  uint32_t peer = 0;  // inode of the peer, 0 if none (or gone)
  // The bound address (sun_path bytes, a leading NUL for abstract names,
  // without the trailing NUL of a path); empty when unbound.
  std::string name;
  uint32_t vfs_ino = 0, vfs_dev = 0;  // the socket file of a path name
  // A listening socket's queued connections: the inodes of the connecting
  // sockets, oldest first.
  std::vector<uint32_t> icons;
  // Bytes queued (stream, seqpacket: all; dgram: the first message), or for
  // a listening socket the connections queued; and its backlog (listening)
  // or bytes sent but not yet read by the peer.
  uint32_t rqueue = 0, wqueue = 0;
  uint8_t shutdown = 0;  // RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2

  bool abstract() const { return !name.empty() && name[0] == '\0'; }
};

struct DiagTable {
  std::map<uint32_t, DiagInfo> sockets;  // by inode
  // The listening socket each waiting connection is queued in, by the
  // connecting socket's inode. (The socket a connection makes in the queue
  // has no inode until accepted: the connecting socket shows no peer.)
  std::map<uint32_t, uint32_t> waiting_in;
};

// Every UNIX socket of the caller's network namespace.
absl::StatusOr<DiagTable> ListUnixSockets();

// A name for messages: the path, or "@name" for an abstract one, or
// "(unbound)".
std::string PrintableName(const std::string& name);

}  // namespace crpp::resources::unix_sk

#endif  // CRPP_RESOURCES_SOCKETS_UNIX_DIAG_H_
