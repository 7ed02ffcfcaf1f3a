#include "core/options.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "core/config_file.h"
#include "core/option_apply.h"
#include "core/option_table.h"

namespace crpp {
namespace {

// absl here is built with its own string_view type, so std::string_view goes through
// std::string (or StrFormat, which accepts both) on its way into absl.
absl::Status Error(std::string_view message) {
  return absl::InvalidArgumentError(std::string(message));
}

// Joins option names with " --", for the list of candidates in an ambiguity message.
std::string JoinNames(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += " --";
    out += name;
  }
  return out;
}

// -h or -V was met: criu acts on it at once, so nothing after it is looked at.
bool Stopped(const Options& o) { return o.show_help || o.show_version; }

absl::Status ScanLong(absl::Span<const std::string> args, size_t& i, Options& opts) {
  const std::string_view body = std::string_view(args[i]).substr(2);
  const size_t eq = body.find('=');
  const std::string_view name = body.substr(0, eq);
  std::optional<std::string> value;
  if (eq != std::string_view::npos) value = std::string(body.substr(eq + 1));

  const LongLookup found = FindLongOption(name);
  if (!found.ambiguous.empty()) {
    return Error(absl::StrFormat("option --%s is ambiguous; possibilities: --%s", name,
                                 JoinNames(found.ambiguous)));
  }
  if (found.spec == nullptr) return Error(absl::StrFormat("unknown option --%s", name));
  const OptionSpec& spec = *found.spec;
  const std::string spelled = absl::StrFormat("--%s", spec.name);
  switch (spec.arg) {
    case ArgKind::kNone:
      if (value.has_value()) {
        return Error(absl::StrFormat("option %s doesn't allow an argument", spelled));
      }
      break;
    case ArgKind::kRequired:
      if (!value.has_value()) {
        if (i + 1 >= args.size()) {
          return Error(absl::StrFormat("option %s requires an argument", spelled));
        }
        value = args[++i];  // Taken even if it looks like an option, as getopt does.
      }
      break;
    case ArgKind::kOptional:
      break;
  }
  return ApplyOption(spec, value, spelled, opts);
}

absl::Status ScanShort(absl::Span<const std::string> args, size_t& i, Options& opts) {
  const std::string& arg = args[i];
  for (size_t j = 1; j < arg.size() && !Stopped(opts); ++j) {
    const OptionSpec* spec = FindShortOption(arg[j]);
    const std::string spelled = absl::StrFormat("-%c", arg[j]);
    if (spec == nullptr) return Error(absl::StrFormat("unknown option %s", spelled));
    if (spec->arg == ArgKind::kNone) {
      if (absl::Status s = ApplyOption(*spec, std::nullopt, spelled, opts); !s.ok()) return s;
      continue;
    }
    // The rest of the cluster is this option's argument. That is why "-verbosity=0" means
    // -v with the argument "erbosity=0" (criu then sets the level to atoi() of it, i.e. 0,
    // whatever number follows the '='), and why "-vR" sets the level to 0 instead of also
    // meaning -R.
    std::optional<std::string> value;
    if (j + 1 < arg.size()) {
      value = arg.substr(j + 1);
    } else if (spec->arg == ArgKind::kRequired) {
      if (i + 1 >= args.size()) {
        return Error(absl::StrFormat("option %s requires an argument", spelled));
      }
      value = args[++i];
    }
    return ApplyOption(*spec, value, spelled, opts);
  }
  return absl::OkStatus();
}

// Scans one argument vector (the command line or one config file) like getopt_long with
// argument permutation, applying options as they come. Positional words go to `positionals`,
// or are dropped if it is null: criu ignores stray words in config files.
absl::Status Scan(absl::Span<const std::string> args, std::vector<std::string>* positionals,
                  Options& opts) {
  for (size_t i = 0; i < args.size() && !Stopped(opts); ++i) {
    const std::string& arg = args[i];
    absl::Status status;
    if (arg == "--") {
      if (positionals != nullptr) {
        positionals->insert(positionals->end(), args.begin() + i + 1, args.end());
      }
      break;
    } else if (arg.starts_with("--")) {
      status = ScanLong(args, i, opts);
    } else if (arg.size() > 1 && arg[0] == '-') {
      status = ScanShort(args, i, opts);
    } else if (positionals != nullptr) {
      positionals->push_back(arg);  // Includes "-" and "", as with getopt.
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Reads and applies one config file; a file that cannot be opened is skipped, as in criu.
absl::Status ApplyConfigFile(const std::string& path, Options& opts) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return absl::OkStatus();
  std::ostringstream text;
  text << in.rdbuf();
  opts.config_files.push_back(path);
  absl::StatusOr<std::vector<std::string>> words = TokenizeConfig(text.str(), path);
  if (!words.ok()) return words.status();
  absl::Status status = Scan(*words, nullptr, opts);
  if (!status.ok()) {
    return Error(absl::StrFormat("config file %s: %s", path, status.message()));
  }
  return absl::OkStatus();
}

constexpr std::pair<std::string_view, Command> kCommands[] = {
    {"dump", Command::kDump},       {"pre-dump", Command::kPreDump},
    {"restore", Command::kRestore}, {"lazy-pages", Command::kLazyPages},
    {"check", Command::kCheck},     {"page-server", Command::kPageServer},
    {"service", Command::kService}, {"swrk", Command::kSwrk},
    {"dedup", Command::kDedup},     {"cpuinfo", Command::kCpuinfoDump},
    {"exec", Command::kExec},       {"show", Command::kShow},
};

// The checks criu makes on the command and on option combinations before doing any work, in
// criu's order. (criu makes some of them only after opening the images dir and probing the
// kernel; none depends on either, so doing them here changes nothing but the timing.)
absl::Status FinishCommand(const std::vector<std::string>& positionals, Options& o) {
  if (positionals.empty()) return Error("command is required");
  const std::string& word = positionals[0];
  const auto* known = std::find_if(std::begin(kCommands), std::end(kCommands),
                                   [&](const auto& c) { return c.first == word; });
  if (known == std::end(kCommands)) return Error(absl::StrFormat("unknown command %s", word));
  o.command = known->second;
  o.command_args.assign(positionals.begin() + 1, positionals.end());
  const std::vector<std::string>& args = o.command_args;

  if (o.command == Command::kSwrk) {
    // criu starts the worker right away, skipping every check below.
    if (args.size() != 1) return Error("usage: criu swrk <fd>");
    o.swrk_fd = std::atoi(args[0].c_str());  // As criu: no validation.
    return absl::OkStatus();
  }
  if (o.exec_cmd) {
    if (args.empty()) return Error("--exec-cmd requires a command");
    if (o.command != Command::kRestore) {
      return Error("--exec-cmd is available for the restore command only");
    }
    if (o.restore_detached) {
      return Error("--restore-detached and --exec-cmd cannot be used together");
    }
    o.exec_argv = args;
  } else if (word != "cpuinfo" && !args.empty()) {
    return Error(
        absl::StrFormat("excessive parameter%s for command %s", args.size() > 1 ? "s" : "", word));
  }
  if (word == "cpuinfo") {
    // criu ignores anything after the action.
    if (args.empty()) return Error("cpuinfo requires an action: dump or check");
    if (args[0] == "check") {
      o.command = Command::kCpuinfoCheck;
    } else if (args[0] != "dump") {
      return Error(absl::StrFormat("unknown cpuinfo action %s: expected dump or check", args[0]));
    }
  }
  const bool streamable = o.command == Command::kDump || o.command == Command::kPreDump ||
                          o.command == Command::kRestore || o.command == Command::kCpuinfoDump;
  if (o.stream && !streamable) {
    return Error(absl::StrFormat("--stream cannot be used with the %s command", word));
  }

  const bool restore = o.command == Command::kRestore;
  if (restore && o.restore_detached && o.leave_stopped && o.shell_job) {
    o.warnings.push_back("Stopped and detached shell job will get SIGHUP from OS.");
  }
  if (o.restore_sibling && !o.restore_detached) {
    return Error("--restore-sibling only makes sense with --restore-detached");
  }
  if (o.ps_socket != -1) {
    if (o.address.has_value() || o.port != 0) {
      o.warnings.push_back(
          "Using --address or --port in combination with --ps-socket is "
          "obsolete");
    }
    if (o.ps_socket <= 2 && o.restore_detached) {
      return Error("--ps-socket: standard file descriptors will be closed in daemon mode");
    }
  }
  if (o.mntns_compat_mode && !restore) {
    return Error("option --mntns-compat-mode is only valid on restore");
  }
  for (const std::string& ns : o.join_ns) {
    if (ns.starts_with("net:") && o.empty_ns_net) {
      return Error("conflicting options: --join-ns net and --empty-ns net");
    }
    if (ns.starts_with("user:")) {
      o.warnings.push_back("join-ns with user-namespace is not fully tested and dangerous");
    }
  }
  if (!o.inherit_fd.empty() && !restore) return Error("--inherit-fd is restore-only option");
  if (o.command == Command::kPreDump && o.lazy_pages) {
    return Error("cannot pre-dump with --lazy-pages");
  }
  if ((o.command == Command::kDump || o.command == Command::kPreDump) && o.tree_pid == 0) {
    return Error(absl::StrFormat("pid not specified: %s needs -t PID", word));
  }
  if (restore && o.tree_pid != 0) {
    o.warnings.push_back("Using -t with criu restore is obsoleted");
  }
  if (restore && o.option_values.contains("network-lock")) {
    o.warnings.push_back(
        "--network-lock will be ignored in restore command; the method "
        "from the dump is used");
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view CommandName(Command command) {
  switch (command) {
    case Command::kNone:
      return "";
    case Command::kCpuinfoCheck:
      return "cpuinfo";
    default:
      break;
  }
  for (const auto& [name, value] : kCommands) {
    if (value == command) return name;
  }
  return "";
}

ParseEnvironment ParseEnvironmentFromProcess() {
  ParseEnvironment env;
  if (const char* home = std::getenv("HOME"); home != nullptr) env.home_dir = home;
  if (const char* file = std::getenv("CRIU_CONFIG_FILE"); file != nullptr) {
    env.config_file_env = file;
  }
  env.deprecated_env = std::getenv("CRIU_DEPRECATED") != nullptr;
  return env;
}

absl::StatusOr<Options> ParseCommandLine(absl::Span<const std::string> args,
                                         const ParseEnvironment& env) {
  Options opts;
  // criu's pre-scan, before any config file: an exact -h/--help anywhere (even as another
  // option's value) wins over everything, and --config/--no-default-config decide which files
  // are read. It matches "--config" exactly, and "--config=" anywhere inside a word, so an
  // abbreviated "--conf FILE" is accepted by the option parser but reads no file.
  bool no_default_config = false;
  std::optional<std::string> config_file;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      opts.show_help = true;
      return opts;
    } else if (arg == "--no-default-config") {
      no_default_config = true;
    } else if (arg == "--config") {
      no_default_config = true;
      config_file.reset();
      if (i + 1 < args.size()) config_file = args[i + 1];
    } else if (size_t at = arg.find("--config="); at != std::string::npos) {
      no_default_config = true;
      config_file = arg.substr(at + std::string_view("--config=").size());
    }
  }

  std::vector<std::string> files;
  if (!no_default_config) {
    files.push_back(env.global_config);
    if (env.home_dir.has_value()) files.push_back(*env.home_dir + "/.criu/default.conf");
  }
  if (env.config_file_env.has_value()) files.push_back(*env.config_file_env);
  if (config_file.has_value()) files.push_back(*config_file);
  for (const std::string& file : files) {
    if (absl::Status s = ApplyConfigFile(file, opts); !s.ok()) return s;
    if (Stopped(opts)) return opts;
  }
  std::vector<std::string> positionals;
  if (absl::Status s = Scan(args, &positionals, opts); !s.ok()) return s;
  if (Stopped(opts)) return opts;

  if (!opts.option_values.contains("work-dir")) opts.work_dir = opts.images_dir;
  // criu lets the environment turn deprecated features on even over --no-deprecated.
  if (env.deprecated_env) opts.deprecated = true;
  if (absl::Status s = FinishCommand(positionals, opts); !s.ok()) return s;
  return opts;
}

absl::Status CheckSupported(const Options& options, absl::Span<const std::string_view> supported) {
  static constexpr std::string_view kParserOwned[] = {"help", "version", "config",
                                                      "no-default-config"};
  auto listed = [&](std::string_view name) {
    return std::find(supported.begin(), supported.end(), name) != supported.end();
  };
  for (const std::string& name : options.set_options) {
    if (listed(name)) continue;
    if (std::find(std::begin(kParserOwned), std::end(kParserOwned), name) !=
        std::end(kParserOwned)) {
      continue;
    }
    const LongLookup found = FindLongOption(name);
    if (found.spec != nullptr && !found.spec->value && listed(name.substr(3))) continue;
    return Error(absl::StrFormat("option --%s is not supported yet", name));
  }
  return absl::OkStatus();
}

std::string ResolveWorkPath(const Options& options, std::string_view path) {
  if (path.starts_with("/")) return std::string(path);
  std::string_view dir = options.work_dir;
  if (dir.empty() || dir == ".") return std::string(path);
  while (dir.size() > 1 && dir.back() == '/') dir.remove_suffix(1);
  if (dir == "/") return absl::StrFormat("/%s", path);
  return absl::StrFormat("%s/%s", dir, path);
}

std::string ResolveLogPath(const Options& options) {
  if (!options.log_file.has_value()) return "";
  if (*options.log_file == "-") return "-";
  return ResolveWorkPath(options, *options.log_file);
}

}  // namespace crpp
