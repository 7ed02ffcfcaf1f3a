// What criu-ns does with namespaces and command lines, in small steps.
#ifndef CRPP_TOOLS_CRIU_NS_NAMESPACES_H_
#define CRPP_TOOLS_CRIU_NS_NAMESPACES_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::criu_ns {

// Removes the option `long_name` (and its short form, if any) with its value
// from `args`: "--name V", "--name=V", "-s V", "-sV". Returns the value, or
// "" if it is not there.
absl::StatusOr<std::string> TakeOption(std::vector<std::string>& args, const std::string& long_name,
                                       const std::string& short_name);

// An absolute path for criu's --pidfile PATH: relative paths are the work
// directory's (-W), else the images directory's (-D), else the current one.
std::string ResolvePidfile(const std::vector<std::string>& args, const std::string& path);

// The pid criu wrote into the pipe `fd` (its --pidfile); an error at EOF.
absl::StatusOr<pid_t> ReadPid(int fd);

// The pid, as we see it, of the child of `parent` whose pid in its own
// namespace is `inner`.
absl::StatusOr<pid_t> OuterPid(pid_t parent, pid_t inner);

absl::Status WritePidfile(const std::string& path, pid_t pid);

// Joins the pid namespace (for our children) and the mount namespace of
// `pid`, where they are not ours; returns its pid there.
absl::StatusOr<pid_t> EnterNamespacesOf(pid_t pid);

// Leaves a process of ours in the pid namespace we joined, until we exit.
absl::Status HoldPidNamespace();

}  // namespace crpp::criu_ns

#endif  // CRPP_TOOLS_CRIU_NS_NAMESPACES_H_
