// The bytes queued in a pty: written on one side, not read on the other yet.
//
// A pty holds them in the line disciplines of its two ends, already
// processed: the slave's input (what the master wrote) after ICRNL, ISTRIP,
// ... and, in canonical mode, cut into lines; the master's input (what the
// slave wrote) after OPOST. No ioctl peeks at them, so the dump reads them
// out (Drain) and puts them straight back (Refill); restore puts them in
// the same way. Refill hands each byte to the line discipline that held it
// with TIOCSTI, under termios that leave it as it is (no echo, no signal
// characters, no input mapping) but keep the canonical line ends, so a reader
// finds the same lines and the same unfinished last line. Writing the bytes
// to the other end instead would run them through the input processing a
// second time (and echo them).
#ifndef CRPP_RESOURCES_TTY_PTY_QUEUE_H_
#define CRPP_RESOURCES_TTY_PTY_QUEUE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace crpp::resources::tty {

// What a line discipline holds at most (N_TTY_BUF_SIZE less the byte it
// keeps free). More bytes waited in the tty's buffer, not processed yet; they
// are written back there (which needs the slave's input processing to leave
// them as they are, for those readable on the slave).
inline constexpr size_t kMaxQueued = 4095;

struct Queued {
  // Readable on the slave. In canonical mode: the complete lines with their
  // ends, a line that VEOF ended followed by that VEOF character, then the
  // unfinished line.
  std::string to_slave;
  // Readable on the master (in packet mode, without the status bytes).
  std::string to_master;
  // Why the bytes cannot be put back exactly ("" when they can): Refill
  // still puts every byte back, but the dump must be refused.
  std::string not_exact;
};

// Reads everything queued in the pty of MASTER and SLAVE (open descriptions
// of its two ends, e.g. copies of a task's) into OUT, and leaves the termios,
// the locked termios and both descriptions' file flags as they were. WHAT
// names the pty in errors. On an error OUT holds what was read so far, which
// the caller must put back.
absl::Status Drain(int master, int slave, const std::string& what, Queued& out);

// Puts Q into the (empty) queues of the pty of MASTER and SLAVE, whose
// termios are the ones Q was read under. Resets a pending packet-mode status
// that its own termios changes raised.
absl::Status Refill(int master, int slave, const Queued& q, const std::string& what);

}  // namespace crpp::resources::tty

#endif  // CRPP_RESOURCES_TTY_PTY_QUEUE_H_
