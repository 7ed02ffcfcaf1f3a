// Dumping a process: the driver that freezes the target, runs every resource
// plugin's Dump and leaves the target as asked. A failure at any point leaves
// the target running exactly as before.
#ifndef CRPP_CORE_DUMP_DUMP_H_
#define CRPP_CORE_DUMP_DUMP_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/context.h"
#include "core/engine.h"

namespace crpp {

struct DumpRequest {
  pid_t pid = 0;
  std::string images_dir;
  bool leave_running = false;  // -R
  bool leave_stopped = false;  // -s
  bool shell_job = false;
  // --external values ("unix[INO]", ...): resources outside the tree the
  // dump may refer to.
  std::vector<std::string> external;
  bool file_locks = false;            // --file-locks
  bool link_remap = false;            // --link-remap
  uint64_t ghost_limit = 1ull << 20;  // --ghost-limit
  // For tests: fail on purpose right after the plugin of this name ran, before
  // the next one starts ("" = never), to prove that a failed dump leaves the
  // target running. A name that is no plugin's is refused.
  std::string fail_after;
  // The resource plugins to run; null: DefaultEngine() (resources/
  // default_resources.h). A program adds its own plugins with
  // Engine<DefaultResources::With<Mine>>.
  const AnyEngine* engine = nullptr;
};

// Writes the images of the process tree rooted at request.pid.
absl::StatusOr<DumpStats> Dump(const DumpRequest& request);

// Writes stats-dump (CRIU's format) into the images directory.
absl::Status WriteDumpStats(const std::string& images_dir, const DumpStats& stats);

}  // namespace crpp

#endif  // CRPP_CORE_DUMP_DUMP_H_
