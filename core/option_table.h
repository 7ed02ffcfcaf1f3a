// The table of criu's command-line options, and getopt_long-style lookups in it.
//
// The table mirrors criu 3.17.1 (the version whose criu(8) we follow): same long names, same
// order, same argument kinds, same short letters. The "no-" entries exist exactly for the
// options criu declares as boolean pairs; other flags (--leave-running, --all, ...) have no
// negative form, and criu rejects e.g. --no-leave-running as an unknown option.
#ifndef CRPP_CORE_OPTION_TABLE_H_
#define CRPP_CORE_OPTION_TABLE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace crpp {

enum class ArgKind {
  kNone,      // --flag; "--flag=x" is an error.
  kRequired,  // --opt=x, --opt x, -ox, -o x.
  kOptional,  // Only attached: --opt=x or -ox. "--opt x" leaves x as a positional argument.
};

// One value per distinct option. The two spellings of a boolean pair share an id and differ
// in OptionSpec::value; --daemon shares kRestoreDetached because criu stores both in one field.
enum class OptionId {
  kTree,
  kLeaveStopped,
  kLeaveRunning,
  kRestoreDetached,
  kRestoreSibling,
  kImagesDir,
  kWorkDir,
  kLogFile,
  kJoinNs,
  kRoot,
  kExtUnixSk,
  kHelp,
  kTcpEstablished,
  kClose,
  kLogPid,
  kVersion,
  kEvasiveDevices,
  kPidfile,
  kVethPair,
  kActionScript,
  kLinkRemap,
  kShellJob,
  kFileLocks,
  kPageServer,
  kAddress,
  kPort,
  kPrevImagesDir,
  kMs,
  kTrackMem,
  kAutoDedup,
  kLibdir,
  kCpuCap,
  kForceIrmap,
  kExtMountMap,
  kExecCmd,
  kManageCgroups,
  kCgroupRoot,
  kInheritFd,
  kFeature,
  kSkipMnt,
  kEnableFs,
  kEnableExternalSharing,
  kEnableExternalMasters,
  kFreezeCgroup,
  kGhostLimit,
  kIrmapScanPath,
  kLsmProfile,
  kTimeout,
  kExternal,
  kEmptyNs,
  kLazyPages,
  kExtra,
  kExperimental,
  kAll,
  kCgroupProps,
  kCgroupPropsFile,
  kCgroupDumpController,
  kSkipInFlight,
  kDeprecated,
  kDisplayStats,
  kWeakSysctls,
  kStatusFd,
  kTcpClose,
  kVerbosity,
  kPsSocket,
  kStream,
  kConfig,
  kNoDefaultConfig,
  kTlsCacert,
  kTlsCacrl,
  kTlsCert,
  kTlsKey,
  kTls,
  kTlsNoCnVerify,
  kCgroupYard,
  kPreDumpMode,
  kFileValidation,
  kLsmMountContext,
  kNetworkLock,
  kMntnsCompatMode,
};

struct OptionSpec {
  std::string_view name;  // Long name without the leading "--".
  ArgKind arg;
  OptionId id;
  bool value;       // For flags: true for the positive spelling, false for the "no-" one.
  char short_name;  // '\0' when the option has no short form.
};

// All long options, in criu's table order (the order matters for ambiguity messages).
absl::Span<const OptionSpec> LongOptions();

// The option behind a short letter, or nullptr if criu has no such letter.
const OptionSpec* FindShortOption(char letter);

// Result of resolving a long name the way getopt_long does: an exact match wins; otherwise a
// unique prefix is accepted ("--tcp-est"), and several prefix matches are ambiguous unless they
// all denote the same thing.
struct LongLookup {
  const OptionSpec* spec = nullptr;         // Set when the name resolved.
  std::vector<std::string_view> ambiguous;  // Candidate names when it did not, if ambiguous.
};
LongLookup FindLongOption(std::string_view name);

}  // namespace crpp

#endif  // CRPP_CORE_OPTION_TABLE_H_
