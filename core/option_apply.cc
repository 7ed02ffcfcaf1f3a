#include "core/option_apply.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace crpp {
namespace {

// absl here is built with its own string_view type, so std::string_view goes through
// std::string (or StrFormat, which accepts both) on its way into absl.
absl::Status Error(std::string_view message) {
  return absl::InvalidArgumentError(std::string(message));
}

// criu's wording for a value its option rejects; `spelled` is "-t" or "--tree" as used.
absl::Status BadArg(std::string_view spelled, std::string_view value, std::string_view why = "") {
  std::string message = absl::StrFormat("invalid argument for %s: %s", spelled, value);
  if (!why.empty()) message += absl::StrFormat(" (%s)", why);
  return Error(message);
}

// criu converts numbers with atoi()/atol(): leading blanks, a sign, digits, and whatever
// follows is ignored ("5x" is 5, "x" is 0). Using the C functions keeps every such case equal.
int CAtoi(const std::string& s) { return std::atoi(s.c_str()); }
long CAtol(const std::string& s) { return std::atol(s.c_str()); }

// --cpu-cap: a list of fpu/cpu/ins/all/none, '^' inverting and ',' resetting the inversion.
// Like criu, each use edits the current set rather than replacing it, and names may be glued
// ("fpuins"); anything that leaves some capability asks for the cpuinfo image as well.
absl::Status ApplyCpuCap(const std::optional<std::string>& value, std::string_view spelled,
                         unsigned& caps) {
  if (!value.has_value()) {
    caps |= kCpuCapAll | kCpuCapImage;
    return absl::OkStatus();
  }
  std::string_view s = *value;
  bool inverse = false;
  auto set = [&](unsigned bits) { caps = inverse ? (caps & ~bits) : (caps | bits); };
  while (!s.empty()) {
    if (s[0] == '^' || s[0] == ',') {
      inverse = s[0] == '^' ? !inverse : false;
      s.remove_prefix(1);
    } else if (s.starts_with("none")) {
      caps = inverse ? kCpuCapAll : kCpuCapNone;
      s.remove_prefix(4);
    } else {
      static constexpr std::pair<std::string_view, unsigned> kNames[] = {
          {"fpu", kCpuCapFpu}, {"all", kCpuCapAll}, {"cpu", kCpuCapCpu}, {"ins", kCpuCapIns}};
      const auto* it = std::find_if(std::begin(kNames), std::end(kNames),
                                    [&](const auto& n) { return s.starts_with(n.first); });
      if (it == std::end(kNames)) {
        return BadArg(spelled, *value, absl::StrFormat("unknown capability at `%s'", s));
      }
      set(it->second);
      s.remove_prefix(it->first.size());
    }
  }
  if (caps != kCpuCapNone) caps |= kCpuCapImage;
  return absl::OkStatus();
}

// "fd[N]:resource" with N >= 0 (criu reads N with sscanf, so blanks before it are fine).
bool ValidInheritFd(std::string_view v) {
  if (!v.starts_with("fd[")) return false;
  const std::string rest(v.substr(3));
  char* end = nullptr;
  const long fd = std::strtol(rest.c_str(), &end, 10);
  if (end == rest.c_str() || fd < 0) return false;
  std::string_view after(end);
  return after.starts_with("]:") && after.size() > 2;
}

// -J "ns:{pid|path}[,extra]". criu also checks that the target exists; that depends on the
// machine, so it is left to restore.
absl::Status ValidateJoinNs(std::string_view spelled, const std::string& value) {
  const size_t colon = value.find(':');
  if (colon == std::string::npos || colon + 1 == value.size()) return BadArg(spelled, value);
  const std::string_view ns = std::string_view(value).substr(0, colon);
  if (ns == "pid") return BadArg(spelled, value, "joining a pid namespace is not supported");
  static constexpr std::string_view kTypes[] = {"net", "uts", "ipc", "time", "user", "mnt"};
  if (std::find(std::begin(kTypes), std::end(kTypes), ns) == std::end(kTypes)) {
    return BadArg(spelled, value, absl::StrFormat("invalid namespace type %s", ns));
  }
  return absl::OkStatus();
}

// Notes the option as given: its name once, in first-seen order, and every value.
void Record(const OptionSpec& spec, const std::optional<std::string>& value, Options& o) {
  const std::string name(spec.name);
  auto [it, inserted] = o.option_values.try_emplace(name);
  if (inserted) o.set_options.push_back(name);
  if (value.has_value()) it->second.push_back(*value);
}

}  // namespace

absl::Status ApplyOption(const OptionSpec& spec, const std::optional<std::string>& value,
                         std::string_view spelled, Options& o) {
  Record(spec, value, o);
  const bool on = spec.value;
  // Only options taking a required argument read `v`; optional ones test `value` first.
  static const std::string kNoValue;
  const std::string& v = value.has_value() ? *value : kNoValue;
  switch (spec.id) {
    case OptionId::kHelp:
      o.show_help = true;
      break;
    case OptionId::kVersion:
      o.show_version = true;
      break;
    case OptionId::kConfig:           // Both were acted upon before parsing, like criu's
    case OptionId::kNoDefaultConfig:  // pre-scan; spotted here they only count as given.
      break;
    case OptionId::kVerbosity:
      // criu: no argument adds one; an argument starting with 'v' comes from "-vvv" (-v with
      // argument "vv") and adds its length plus one; anything else sets the level to atoi()
      // of it. Hence "-v4" and "--verbosity=4" set 4, "--verbosity" and "-v" add 1, and
      // "--verbosity=" sets 0.
      if (!value.has_value()) {
        ++o.verbosity;
      } else if (!value->empty() && (*value)[0] == 'v') {
        o.verbosity += static_cast<int>(value->size()) + 1;
      } else {
        o.verbosity = CAtoi(*value);
      }
      break;
    case OptionId::kTree:
      o.tree_pid = CAtoi(v);
      if (o.tree_pid <= 0) return BadArg(spelled, v);
      break;
    // criu keeps a single final task state, so the last of -s/-R wins.
    case OptionId::kLeaveStopped:
      o.leave_stopped = true;
      o.leave_running = false;
      break;
    case OptionId::kLeaveRunning:
      o.leave_running = true;
      o.leave_stopped = false;
      break;
    case OptionId::kRestoreDetached:
      o.restore_detached = on;
      break;
    case OptionId::kRestoreSibling:
      o.restore_sibling = on;
      break;
    case OptionId::kImagesDir:
      o.images_dir = v;
      break;
    case OptionId::kWorkDir:
      o.work_dir = v;
      break;
    case OptionId::kLogFile:
      // criu would fail later, opening "" as the log; saying so now is clearer.
      if (v.empty()) return BadArg(spelled, v, "empty log file name");
      o.log_file = v;
      break;
    case OptionId::kJoinNs:
      if (absl::Status s = ValidateJoinNs(spelled, v); !s.ok()) return s;
      o.join_ns.push_back(v);
      break;
    case OptionId::kRoot:
      o.root = v;
      break;
    case OptionId::kExtUnixSk:
      o.ext_unix_sk = true;
      if (value.has_value()) {
        std::string_view ids = *value;
        while (!ids.empty()) {
          const size_t comma = std::min(ids.find(','), ids.size());
          const std::string_view id = ids.substr(0, comma);
          ids.remove_prefix(std::min(comma + 1, ids.size()));
          if (id.empty()) continue;  // criu tolerates "1," and "".
          if (!std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return BadArg(spelled, *value, "expected comma-separated socket inode numbers");
          }
          o.ext_unix_sk_ids.emplace_back(id);
        }
      }
      break;
    case OptionId::kTcpEstablished:
      o.tcp_established = on;
      break;
    case OptionId::kClose:
      o.close_fds.push_back(CAtoi(v));
      break;
    case OptionId::kLogPid:
      o.log_pid = on;
      break;
    case OptionId::kEvasiveDevices:
      o.evasive_devices = on;
      break;
    case OptionId::kPidfile:
      o.pidfile = v;
      break;
    case OptionId::kVethPair:
      if (v.find('=') == std::string::npos) return BadArg(spelled, v, "expected IN=OUT");
      o.veth_pairs.push_back(v);
      break;
    case OptionId::kActionScript:
      o.action_scripts.push_back(v);
      break;
    case OptionId::kLinkRemap:
      o.link_remap = on;
      break;
    case OptionId::kShellJob:
      o.shell_job = on;
      break;
    case OptionId::kFileLocks:
      o.file_locks = on;
      break;
    case OptionId::kPageServer:
      o.page_server = on;
      break;
    case OptionId::kAddress:
      o.address = v;
      break;
    case OptionId::kPort:
      // criu stores atoi() of it in 16 bits and rejects 0, so "65536" fails and "-1" is 65535.
      o.port = static_cast<std::uint16_t>(CAtoi(v));
      if (o.port == 0) return BadArg(spelled, v);
      break;
    case OptionId::kPrevImagesDir:
      o.prev_images_dir = v;
      break;
    case OptionId::kMs:
      return Error("option --ms is deprecated; see the options of the check command");
    case OptionId::kTrackMem:
      o.track_mem = on;
      break;
    case OptionId::kAutoDedup:
      o.auto_dedup = on;
      break;
    case OptionId::kLibdir:
      o.libdir = v;
      break;
    case OptionId::kCpuCap:
      return ApplyCpuCap(value, spelled, o.cpu_cap);
    case OptionId::kForceIrmap:
      o.force_irmap = on;
      break;
    case OptionId::kExtMountMap:
      if (v == "auto") {
        o.autodetect_ext_mounts = true;
      } else if (v.find(':') == std::string::npos || v[0] == ':') {
        return BadArg(spelled, v, "expected KEY:VALUE or auto");
      } else {
        o.ext_mount_map.push_back(v);
      }
      break;
    case OptionId::kExecCmd:
      o.exec_cmd = true;
      break;
    case OptionId::kManageCgroups: {
      static constexpr std::pair<std::string_view, CgroupMode> kModes[] = {
          {"none", CgroupMode::kNone},     {"props", CgroupMode::kProps},
          {"soft", CgroupMode::kSoft},     {"full", CgroupMode::kFull},
          {"strict", CgroupMode::kStrict}, {"ignore", CgroupMode::kIgnore}};
      o.manage_cgroups = true;
      if (!value.has_value()) {
        o.manage_cgroups_mode = CgroupMode::kSoft;
        break;
      }
      const auto* it = std::find_if(std::begin(kModes), std::end(kModes),
                                    [&](const auto& m) { return m.first == *value; });
      if (it == std::end(kModes)) {
        return BadArg(spelled, *value,
                      "unknown cgroups mode; expected none, props, soft, "
                      "full, strict or ignore");
      }
      o.manage_cgroups_mode = it->second;
      break;
    }
    case OptionId::kCgroupRoot:
      o.cgroup_roots.push_back(v);
      break;
    case OptionId::kInheritFd:
      if (!ValidInheritFd(v)) return BadArg(spelled, v, "expected fd[N]:RESOURCE");
      o.inherit_fd.push_back(v);
      break;
    case OptionId::kFeature:
      o.features.push_back(v);
      break;
    case OptionId::kSkipMnt:
      o.skip_mnt.push_back(v);
      break;
    case OptionId::kEnableFs:
      o.enable_fs.push_back(v);
      break;
    case OptionId::kEnableExternalSharing:
      o.enable_external_sharing = true;
      break;
    case OptionId::kEnableExternalMasters:
      o.enable_external_masters = true;
      break;
    case OptionId::kFreezeCgroup:
      o.freeze_cgroup = v;
      break;
    case OptionId::kGhostLimit: {
      // criu looks for the unit letter anywhere in the string, K before M before G.
      std::uint64_t n = static_cast<std::uint64_t>(CAtol(v));
      if (v.find('K') != std::string::npos) {
        n <<= 10;
      } else if (v.find('M') != std::string::npos) {
        n <<= 20;
      } else if (v.find('G') != std::string::npos) {
        n <<= 30;
      }
      o.ghost_limit = n;
      break;
    }
    case OptionId::kIrmapScanPath:
      o.irmap_scan_paths.push_back(v);
      break;
    case OptionId::kLsmProfile:
      o.lsm_profile = v;
      break;
    case OptionId::kTimeout:
      o.timeout = static_cast<unsigned>(CAtoi(v));
      break;
    case OptionId::kExternal:
      o.external.push_back(v);
      break;
    case OptionId::kEmptyNs:
      if (v != "net") return Error(absl::StrFormat("unsupported empty namespace: %s", v));
      o.empty_ns_net = true;
      break;
    case OptionId::kLazyPages:
      o.lazy_pages = true;
      break;
    case OptionId::kExtra:
      o.check_extra = on;
      break;
    case OptionId::kExperimental:
      o.check_experimental = on;
      break;
    case OptionId::kAll:  // --extra plus --experimental.
      o.check_all = true;
      o.check_extra = true;
      o.check_experimental = true;
      break;
    case OptionId::kCgroupProps:
      o.cgroup_props = v;
      break;
    case OptionId::kCgroupPropsFile:
      o.cgroup_props_file = v;
      break;
    case OptionId::kCgroupDumpController:
      o.cgroup_dump_controllers.push_back(v);
      break;
    case OptionId::kSkipInFlight:
      o.skip_in_flight = on;
      break;
    case OptionId::kDeprecated:
      o.deprecated = on;
      break;
    case OptionId::kDisplayStats:
      o.display_stats = on;
      break;
    case OptionId::kWeakSysctls:
      o.weak_sysctls = on;
      break;
    case OptionId::kStatusFd:
      if (std::sscanf(v.c_str(), "%d", &o.status_fd) != 1) {
        return Error(absl::StrFormat("unable to parse the value of --status-fd: %s", v));
      }
      break;
    case OptionId::kTcpClose:
      o.tcp_close = on;
      break;
    case OptionId::kPsSocket:
      o.ps_socket = CAtoi(v);
      break;
    case OptionId::kStream:
      o.stream = on;
      break;
    case OptionId::kTlsCacert:
      o.tls_cacert = v;
      break;
    case OptionId::kTlsCacrl:
      o.tls_cacrl = v;
      break;
    case OptionId::kTlsCert:
      o.tls_cert = v;
      break;
    case OptionId::kTlsKey:
      o.tls_key = v;
      break;
    case OptionId::kTls:
      o.tls = on;
      break;
    case OptionId::kTlsNoCnVerify:
      o.tls_no_cn_verify = true;
      break;
    case OptionId::kCgroupYard:
      o.cgroup_yard = v;
      break;
    case OptionId::kPreDumpMode:
      if (v == "splice") {
        o.pre_dump_mode = PreDumpMode::kSplice;
      } else if (v == "read") {
        o.pre_dump_mode = PreDumpMode::kRead;
      } else {
        return BadArg(spelled, v, "expected splice or read");
      }
      break;
    case OptionId::kFileValidation:
      if (v == "filesize") {
        o.file_validation = FileValidation::kFileSize;
      } else if (v == "buildid") {
        o.file_validation = FileValidation::kBuildId;
      } else {
        return BadArg(spelled, v, "expected filesize or buildid");
      }
      break;
    case OptionId::kLsmMountContext:
      o.lsm_mount_context = v;
      break;
    case OptionId::kNetworkLock:
      if (v == "iptables") {
        o.network_lock = NetworkLock::kIptables;
      } else if (v == "nftables") {
        o.network_lock = NetworkLock::kNftables;
      } else {
        return BadArg(spelled, v, "expected iptables or nftables");
      }
      break;
    case OptionId::kMntnsCompatMode:
      o.mntns_compat_mode = on;
      break;
  }
  return absl::OkStatus();
}

}  // namespace crpp
