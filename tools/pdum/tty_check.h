// --validate-tty: whether a job's terminal can come back at thaw, checked
// before anything is frozen.
//
// crpp gives a shell job back on the terminal thaw runs on: every fd the job
// had on its terminal becomes thaw's terminal, and the job joins thaw's
// session (criu's --shell-job). It never recreates the old terminal, so it
// does not matter who owned it (an editor's integrated terminal, sshd,
// tmux: unlike criu, no "tty: No task found with sid" at restore). What
// cannot come back that way:
//   - the master side of a pseudo-terminal (/dev/ptmx): the job IS a
//     terminal (tmux, screen, script, an editor's pty host), and making it
//     thaw's terminal would hand it the wrong end;
//   - fds on two or more terminals: they would all become the same one;
//   - a job that leads its terminal's session (a login shell, the first
//     program of a terminal window): thaw restores a job as a member of
//     thaw's session, never as a session leader with a terminal of its own;
//   - a job whose fds are on one terminal while its controlling terminal
//     is another: thaw's terminal would become both.
// A job without a terminal (its stdio pipes or files, a session of its own)
// always passes.
#ifndef CRPP_TOOLS_PDUM_TTY_CHECK_H_
#define CRPP_TOOLS_PDUM_TTY_CHECK_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace crpp::pdum {

struct TtyVerdict {
  absl::Status status;   // OK, or FailedPrecondition naming the pid, fd and terminal
  std::string hint;      // what to do instead, when not OK
  std::string terminal;  // the job's terminal ("" when none or not known)
};

// Looks at every process of the tree rooted at `root` (root first, then its
// descendants) through /proc.
TtyVerdict CheckJobTerminal(pid_t root);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_TTY_CHECK_H_
