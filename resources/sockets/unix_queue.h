// Reading a UNIX socket's receive queue without consuming it, and the
// socket options the UNIX socket plugin keeps (sk-opts.proto).
#ifndef CRPP_RESOURCES_SOCKETS_UNIX_QUEUE_H_
#define CRPP_RESOURCES_SOCKETS_UNIX_QUEUE_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sk-opts.pb.h"

namespace crpp::resources::unix_sk {

// What `sock`'s receive queue holds, left in place: one string per message
// for SOCK_DGRAM and SOCK_SEQPACKET, a single string of every byte for
// SOCK_STREAM (nothing if empty). Peeks from offset 0 with SO_PEEK_OFF and
// puts the socket's own peek offset back. Messages carrying file
// descriptors and empty messages are refused (`what` names the socket).
absl::StatusOr<std::vector<std::string>> PeekQueue(int sock, int type, const std::string& what);

// SOL_SOCKET options worth restoring.
absl::StatusOr<criu::sk_opts_entry> ReadOptions(int sock, const std::string& what);
// Sets them again on `sock`; the buffer sizes are set as they were read.
absl::Status ApplyOptions(int sock, const criu::sk_opts_entry& opts, const std::string& what);

}  // namespace crpp::resources::unix_sk

#endif  // CRPP_RESOURCES_SOCKETS_UNIX_QUEUE_H_
