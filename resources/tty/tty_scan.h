// Which terminals the tree holds, found from /proc alone, and the checks
// that refuse what restore could not give back (tty.h): used by the tty
// plugin's Precheck (before the tree is stopped) and again by its Dump.
#ifndef CRPP_RESOURCES_TTY_TTY_SCAN_H_
#define CRPP_RESOURCES_TTY_TTY_SCAN_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/context.h"

namespace crpp::resources::tty {

// What a terminal fd of the tree is to the tty plugin.
enum class End {
  kMaster,    // the master of a pty of the tree
  kSlave,     // a slave of a pty of the tree
  kExternal,  // a terminal named by --external tty[RDEV:DEV]
  kOther,     // a pty slave whose master is outside: the fds plugin's
};

// One fd of a task of the tree that is an end of a pty, or an external
// terminal.
struct TtyFd {
  pid_t pid;
  int fd;
  std::string link;
  struct stat st;
  End end;
  unsigned index;   // of a pty end
  std::string key;  // ExternalKey() of all but a master
};

struct Scan {
  std::vector<TtyFd> fds;
  std::set<unsigned> masters, slaves;  // indexes of the pty ends the tree holds
};

absl::StatusOr<Scan> ScanTree(DumpContext& ctx);

// The ends of the ptys and the controlling terminals of the tree.
absl::Status CheckScan(const DumpContext& ctx, const Scan& scan);

}  // namespace crpp::resources::tty

#endif  // CRPP_RESOURCES_TTY_TTY_SCAN_H_
