// pdum-criu doctor: a ✓/✗ checklist of what freeze and thaw need here, with
// a fix for each ✗. It checks this very process (its capabilities, what the
// kernel lets it do), since the engine runs in it: no criu, no sudo.
#ifndef CRPP_TOOLS_PDUM_DOCTOR_H_
#define CRPP_TOOLS_PDUM_DOCTOR_H_

#include <string>
#include <vector>

namespace crpp::pdum {

struct DoctorCheck {
  std::string section;  // "Capabilities", "Kernel features", ...
  std::string name;
  bool ok = false;
  std::string detail;  // what was found (ok) or why not
  std::string hint;    // the fix, when not ok
};

// Every check, in the order printed: capabilities, the kernel features the
// engine uses (`criu check`'s basic probes and pidfds), system settings
// (ns_last_pid, ptrace scope) and the programs the tool runs.
std::vector<DoctorCheck> RunDoctorChecks();

// Prints the checklist; 0 when every check passed, 1 otherwise.
int DoctorCommand(const std::vector<std::string>& args);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_DOCTOR_H_
