// crit x DIR {ps,fds,mems,rss}: summaries of a dump directory, in the text
// format of CRIU's crit explorers.
#ifndef CRPP_TOOLS_CRIT_EXPLORE_H_
#define CRPP_TOOLS_CRIT_EXPLORE_H_

#include <string>

#include "absl/status/statusor.h"

namespace crpp::crit {

absl::StatusOr<std::string> Explore(const std::string& dir, const std::string& what);

}  // namespace crpp::crit

#endif  // CRPP_TOOLS_CRIT_EXPLORE_H_
