#include "core/option_table.h"

#include <string_view>
#include <utility>
#include <vector>

namespace crpp {
namespace {

using K = ArgKind;
using Id = OptionId;

// Shorthands that keep the table one line per spelling.
constexpr OptionSpec Flag(std::string_view name, Id id, char short_name = '\0') {
  return {name, K::kNone, id, true, short_name};
}
constexpr OptionSpec NoFlag(std::string_view name, Id id) {
  return {name, K::kNone, id, false, '\0'};
}
constexpr OptionSpec Req(std::string_view name, Id id, char short_name = '\0') {
  return {name, K::kRequired, id, true, short_name};
}
constexpr OptionSpec Opt(std::string_view name, Id id, char short_name = '\0') {
  return {name, K::kOptional, id, true, short_name};
}

// Order and membership follow criu 3.17.1's long-option table entry by entry. A "Flag" followed
// by a "NoFlag" is one of criu's boolean pairs; a lone Flag has no negative spelling in criu.
constexpr OptionSpec kOptions[] = {
    Req("tree", Id::kTree, 't'),
    Flag("leave-stopped", Id::kLeaveStopped, 's'),
    Flag("leave-running", Id::kLeaveRunning, 'R'),
    Flag("restore-detached", Id::kRestoreDetached, 'd'),
    NoFlag("no-restore-detached", Id::kRestoreDetached),
    Flag("restore-sibling", Id::kRestoreSibling, 'S'),
    NoFlag("no-restore-sibling", Id::kRestoreSibling),
    Flag("daemon", Id::kRestoreDetached),
    NoFlag("no-daemon", Id::kRestoreDetached),
    Req("images-dir", Id::kImagesDir, 'D'),
    Req("work-dir", Id::kWorkDir, 'W'),
    Req("log-file", Id::kLogFile, 'o'),
    Req("join-ns", Id::kJoinNs, 'J'),
    Req("root", Id::kRoot, 'r'),
    Opt("ext-unix-sk", Id::kExtUnixSk, 'x'),
    Flag("help", Id::kHelp, 'h'),
    Flag("tcp-established", Id::kTcpEstablished),
    NoFlag("no-tcp-established", Id::kTcpEstablished),
    Req("close", Id::kClose),
    Flag("log-pid", Id::kLogPid),
    NoFlag("no-log-pid", Id::kLogPid),
    Flag("version", Id::kVersion, 'V'),
    Flag("evasive-devices", Id::kEvasiveDevices),
    NoFlag("no-evasive-devices", Id::kEvasiveDevices),
    Req("pidfile", Id::kPidfile),
    Req("veth-pair", Id::kVethPair),
    Req("action-script", Id::kActionScript),
    Flag("link-remap", Id::kLinkRemap),
    NoFlag("no-link-remap", Id::kLinkRemap),
    Flag("shell-job", Id::kShellJob, 'j'),
    NoFlag("no-shell-job", Id::kShellJob),
    Flag("file-locks", Id::kFileLocks, 'l'),
    NoFlag("no-file-locks", Id::kFileLocks),
    Flag("page-server", Id::kPageServer),
    NoFlag("no-page-server", Id::kPageServer),
    Req("address", Id::kAddress),
    Req("port", Id::kPort),
    Req("prev-images-dir", Id::kPrevImagesDir),
    Flag("ms", Id::kMs),
    Flag("track-mem", Id::kTrackMem),
    NoFlag("no-track-mem", Id::kTrackMem),
    Flag("auto-dedup", Id::kAutoDedup),
    NoFlag("no-auto-dedup", Id::kAutoDedup),
    Req("libdir", Id::kLibdir, 'L'),
    Opt("cpu-cap", Id::kCpuCap),
    Flag("force-irmap", Id::kForceIrmap),
    NoFlag("no-force-irmap", Id::kForceIrmap),
    Req("ext-mount-map", Id::kExtMountMap, 'M'),
    Flag("exec-cmd", Id::kExecCmd),
    Opt("manage-cgroups", Id::kManageCgroups),
    Req("cgroup-root", Id::kCgroupRoot),
    Req("inherit-fd", Id::kInheritFd),
    Req("feature", Id::kFeature),
    Req("skip-mnt", Id::kSkipMnt),
    Req("enable-fs", Id::kEnableFs),
    Flag("enable-external-sharing", Id::kEnableExternalSharing),
    Flag("enable-external-masters", Id::kEnableExternalMasters),
    Req("freeze-cgroup", Id::kFreezeCgroup),
    Req("ghost-limit", Id::kGhostLimit),
    Req("irmap-scan-path", Id::kIrmapScanPath),
    Req("lsm-profile", Id::kLsmProfile),
    Req("timeout", Id::kTimeout),
    Req("external", Id::kExternal),
    Req("empty-ns", Id::kEmptyNs),
    Flag("lazy-pages", Id::kLazyPages),
    Flag("extra", Id::kExtra),
    NoFlag("no-extra", Id::kExtra),
    Flag("experimental", Id::kExperimental),
    NoFlag("no-experimental", Id::kExperimental),
    Flag("all", Id::kAll),
    Req("cgroup-props", Id::kCgroupProps),
    Req("cgroup-props-file", Id::kCgroupPropsFile),
    Req("cgroup-dump-controller", Id::kCgroupDumpController),
    Flag("skip-in-flight", Id::kSkipInFlight),
    NoFlag("no-skip-in-flight", Id::kSkipInFlight),
    Flag("deprecated", Id::kDeprecated),
    NoFlag("no-deprecated", Id::kDeprecated),
    Flag("display-stats", Id::kDisplayStats),
    NoFlag("no-display-stats", Id::kDisplayStats),
    Flag("weak-sysctls", Id::kWeakSysctls),
    NoFlag("no-weak-sysctls", Id::kWeakSysctls),
    Req("status-fd", Id::kStatusFd),
    Flag("tcp-close", Id::kTcpClose),
    NoFlag("no-tcp-close", Id::kTcpClose),
    Opt("verbosity", Id::kVerbosity, 'v'),
    Req("ps-socket", Id::kPsSocket),
    Flag("stream", Id::kStream),
    NoFlag("no-stream", Id::kStream),
    Req("config", Id::kConfig),
    Flag("no-default-config", Id::kNoDefaultConfig),
    Req("tls-cacert", Id::kTlsCacert),
    Req("tls-cacrl", Id::kTlsCacrl),
    Req("tls-cert", Id::kTlsCert),
    Req("tls-key", Id::kTlsKey),
    Flag("tls", Id::kTls),
    NoFlag("no-tls", Id::kTls),
    Flag("tls-no-cn-verify", Id::kTlsNoCnVerify),
    Req("cgroup-yard", Id::kCgroupYard),
    Req("pre-dump-mode", Id::kPreDumpMode),
    Req("file-validation", Id::kFileValidation),
    Req("lsm-mount-context", Id::kLsmMountContext),
    Req("network-lock", Id::kNetworkLock),
    Flag("mntns-compat-mode", Id::kMntnsCompatMode),
    NoFlag("no-mntns-compat-mode", Id::kMntnsCompatMode),
};

// getopt_long does not call two prefix matches ambiguous when they would have the same effect
// (same argument kind, same target, same value).
bool SameEffect(const OptionSpec& a, const OptionSpec& b) {
  return a.arg == b.arg && a.id == b.id && a.value == b.value;
}

}  // namespace

absl::Span<const OptionSpec> LongOptions() { return kOptions; }

const OptionSpec* FindShortOption(char letter) {
  if (letter == '\0') return nullptr;
  for (const OptionSpec& spec : kOptions) {
    if (spec.short_name == letter) return &spec;
  }
  return nullptr;
}

LongLookup FindLongOption(std::string_view name) {
  LongLookup result;
  if (name.empty()) return result;
  for (const OptionSpec& spec : kOptions) {
    if (spec.name == name) {
      result.spec = &spec;
      return result;
    }
  }
  const OptionSpec* first = nullptr;
  bool ambiguous = false;
  std::vector<std::string_view> candidates;
  for (const OptionSpec& spec : kOptions) {
    if (spec.name.substr(0, name.size()) != name) continue;
    candidates.push_back(spec.name);
    if (first == nullptr) {
      first = &spec;
    } else if (!SameEffect(*first, spec)) {
      ambiguous = true;
    }
  }
  if (ambiguous) {
    result.ambiguous = std::move(candidates);
  } else {
    result.spec = first;
  }
  return result;
}

}  // namespace crpp
