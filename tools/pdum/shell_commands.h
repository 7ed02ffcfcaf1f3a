// pdum-criu shell freeze | thaw | beam: each takes the words after its name
// and returns the process's exit code (0, criu's 1 on failure, 2 on a
// command line it cannot understand).
#ifndef CRPP_TOOLS_PDUM_SHELL_COMMANDS_H_
#define CRPP_TOOLS_PDUM_SHELL_COMMANDS_H_

#include <string>
#include <vector>

namespace crpp::pdum {

int ShellFreeze(const std::vector<std::string>& args);
int ShellThaw(const std::vector<std::string>& args);
int ShellBeam(const std::vector<std::string>& args);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_SHELL_COMMANDS_H_
