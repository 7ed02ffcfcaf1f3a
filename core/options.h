// Command line of our `criu`: the same commands, options, spellings and config files as criu
// 3.17.1, parsed into an Options value.
//
// Parsing follows criu's behaviour, which is glibc getopt_long's plus criu's own rules:
//  - Options and positional words may be mixed ("criu -v4 dump -t 1" == "criu dump -v4 -t 1");
//    "--" ends the options. The first positional word is the command.
//  - Long options may be abbreviated to any unambiguous prefix ("--tcp-est"), and take their
//    argument as "--opt=x" or "--opt x"; options with an optional argument (--verbosity,
//    --cpu-cap, --manage-cgroups, --ext-unix-sk) only take an attached one.
//  - Short options cluster ("-Rj", "-vvv"); a short option's argument may be attached ("-t1").
//    An optional argument takes the rest of the cluster, which gives criu's -v rules: "-v"
//    adds 1 to the default level 2, "-vvv" adds 3 (it is -v with argument "vv"), "-v4" and
//    "--verbosity=4" set 4, "--verbosity 4" adds 1 and leaves "4" as a positional word, and
//    "-verbosity=4" sets 0 (it is -v with argument "erbosity=4", whose atoi() is 0).
//  - Config files are read before the command line, see ParseEnvironment.
//  - -h/--help and -V/--version are reported through show_help/show_version rather than acted
//    upon, so that the caller decides how to print.
#ifndef CRPP_CORE_OPTIONS_H_
#define CRPP_CORE_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/log.h"

namespace crpp {

enum class Command {
  kNone,  // Only with show_help or show_version.
  kDump,
  kPreDump,
  kRestore,
  kLazyPages,
  kCheck,
  kPageServer,
  kService,
  kSwrk,  // "criu swrk FD": RPC worker on an inherited socket (used by libcriu).
  kDedup,
  kCpuinfoDump,
  kCpuinfoCheck,
  kExec,  // Deprecated in criu (replaced by compel); parsed so the tool can say so.
  kShow,  // Deprecated in criu (replaced by crit); likewise.
};

// The word criu uses for the command ("cpuinfo" for both cpuinfo actions).
std::string_view CommandName(Command command);

enum class PreDumpMode { kSplice, kRead };
enum class CgroupMode { kIgnore, kNone, kProps, kSoft, kFull, kStrict };
enum class FileValidation { kFileSize, kBuildId };
enum class NetworkLock { kIptables, kNftables };

// --cpu-cap bits, as in criu's images and RPC.
inline constexpr unsigned kCpuCapNone = 0;
inline constexpr unsigned kCpuCapFpu = 1u << 0;
inline constexpr unsigned kCpuCapCpu = 1u << 1;
inline constexpr unsigned kCpuCapIns = 1u << 2;
inline constexpr unsigned kCpuCapImage = 1u << 3;  // Write/read the cpuinfo image.
inline constexpr unsigned kCpuCapAll = kCpuCapFpu | kCpuCapCpu | kCpuCapIns;
inline constexpr unsigned kCpuCapDefault = kCpuCapFpu | kCpuCapIns;

struct Options {
  Command command = Command::kNone;
  std::vector<std::string> command_args;  // Positional words after the command.
  bool show_help = false;
  bool show_version = false;

  // Common options.
  int verbosity = log::kDefaultVerbosity;
  std::optional<std::string> log_file;  // -o; unset means stderr, "-" means stdout.
  std::string images_dir = ".";         // -D
  std::string work_dir = ".";           // -W; defaults to images_dir.
  std::optional<std::string> pidfile;
  bool log_pid = false;
  bool display_stats = false;
  std::optional<std::string> libdir;  // -L
  std::vector<int> close_fds;         // --close: criu closes these before doing anything.
  std::vector<std::string> action_scripts;
  bool stream = false;
  bool deprecated = false;  // --deprecated, or CRIU_DEPRECATED in the environment.

  // Dump, pre-dump and restore.
  int tree_pid = 0;            // -t
  bool leave_running = false;  // -R and -s select one final state: the last one given wins.
  bool leave_stopped = false;
  bool restore_detached = false;  // -d, --daemon
  bool restore_sibling = false;
  bool shell_job = false;
  bool file_locks = false;
  bool tcp_established = false;
  bool tcp_close = false;
  bool skip_in_flight = false;
  bool link_remap = false;
  bool evasive_devices = false;
  bool ext_unix_sk = false;
  std::vector<std::string> ext_unix_sk_ids;  // Inodes given as -x123,456.
  bool track_mem = false;
  bool auto_dedup = false;
  bool force_irmap = false;
  bool lazy_pages = false;
  bool weak_sysctls = false;
  bool mntns_compat_mode = false;
  bool enable_external_sharing = false;
  bool enable_external_masters = false;
  bool autodetect_ext_mounts = false;  // -M auto
  bool exec_cmd = false;               // --exec-cmd; the command is in exec_argv.
  std::vector<std::string> exec_argv;
  unsigned timeout = 10;                 // Seconds to collect tasks.
  std::uint64_t ghost_limit = 1u << 20;  // Bytes.
  PreDumpMode pre_dump_mode = PreDumpMode::kSplice;
  std::optional<std::string> prev_images_dir;
  unsigned cpu_cap = kCpuCapDefault;
  bool manage_cgroups = false;  // Given at all; the mode is meaningful either way.
  CgroupMode manage_cgroups_mode = CgroupMode::kSoft;
  std::vector<std::string> cgroup_roots;  // "[controller:]/newroot"
  std::optional<std::string> cgroup_props;
  std::optional<std::string> cgroup_props_file;
  std::vector<std::string> cgroup_dump_controllers;
  std::optional<std::string> cgroup_yard;
  std::optional<std::string> freeze_cgroup;
  std::optional<std::string> root;  // -r
  std::optional<std::string> lsm_profile;
  std::optional<std::string> lsm_mount_context;
  std::vector<std::string> external;       // --external, in order given.
  std::vector<std::string> inherit_fd;     // "fd[N]:resource"
  std::vector<std::string> join_ns;        // -J "ns:target[,extra]"
  std::vector<std::string> veth_pairs;     // "in=out"
  std::vector<std::string> ext_mount_map;  // -M "key:value" (not "auto")
  std::vector<std::string> skip_mnt;
  std::vector<std::string> enable_fs;
  std::vector<std::string> irmap_scan_paths;
  bool empty_ns_net = false;  // --empty-ns net (criu accepts nothing else).
  FileValidation file_validation = FileValidation::kBuildId;
  NetworkLock network_lock = NetworkLock::kIptables;

  // Page server and its clients.
  bool page_server = false;
  std::optional<std::string> address;
  std::uint16_t port = 0;  // criu keeps the port in 16 bits: 65536 wraps to 0 and is rejected.
  int ps_socket = -1;
  int status_fd = -1;
  bool tls = false;
  bool tls_no_cn_verify = false;
  std::optional<std::string> tls_cacert;
  std::optional<std::string> tls_cacrl;
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;

  // check.
  std::vector<std::string> features;  // --feature, validated by the check command.
  bool check_all = false;
  bool check_extra = false;
  bool check_experimental = false;

  // swrk.
  int swrk_fd = -1;

  // What was given, for CheckSupported() and diagnostics. Names are canonical long names
  // ("tree" for -t, "no-shell-job" for --no-shell-job), listed once each in the order first
  // seen, config files included. Values are every argument given, in order.
  std::vector<std::string> set_options;
  std::map<std::string, std::vector<std::string>, std::less<>> option_values;
  std::vector<std::string> config_files;  // Config files actually read, in order.
  std::vector<std::string> warnings;      // criu's parse-time warnings, for the caller to log.
};

// Where config files come from. criu reads, in this order: the global file, the user's
// ($HOME/.criu/default.conf), $CRIU_CONFIG_FILE, the file given with --config, then the
// command line; later settings override earlier ones and list options accumulate.
// --no-default-config (any number of times) or --config skips the first two, but criu still
// reads $CRIU_CONFIG_FILE then. A file that cannot be opened is skipped silently, even one
// named by --config, as criu does. The parser itself never reads the environment: the caller
// passes it in, which keeps parsing deterministic and testable.
struct ParseEnvironment {
  std::string global_config = "/etc/criu/default.conf";
  std::optional<std::string> home_dir;         // $HOME; unset skips the user config.
  std::optional<std::string> config_file_env;  // $CRIU_CONFIG_FILE.
  bool deprecated_env = false;                 // $CRIU_DEPRECATED is set.
};

// Reads HOME, CRIU_CONFIG_FILE and CRIU_DEPRECATED; meant for main() only.
ParseEnvironment ParseEnvironmentFromProcess();

// Parses `args` (argv without the program name). Errors are InvalidArgument and name the
// offending option or word. With show_help or show_version set, parsing stopped there and
// nothing else is guaranteed.
absl::StatusOr<Options> ParseCommandLine(absl::Span<const std::string> args,
                                         const ParseEnvironment& env);

// Fails with "option --X is not supported yet" for the first option in `set_options` that is
// not in `supported` (names without dashes). "no-X" passes when "X" is supported. The options
// the parser handles itself (help, version, config, no-default-config) always pass.
absl::Status CheckSupported(const Options& options, absl::Span<const std::string_view> supported);

// Resolves a path the way criu does after its chdir() into the work dir: absolute paths stay,
// relative ones are taken relative to work_dir (itself relative to the caller's cwd).
std::string ResolveWorkPath(const Options& options, std::string_view path);

// Where the log goes: "" for stderr (no -o: criu's CLI default; only its RPC service defaults
// to a file), "-" for stdout (criu's meaning of "-o -"), else the -o path via ResolveWorkPath.
std::string ResolveLogPath(const Options& options);

// Help text in the spirit of criu --help (our own wording).
std::string UsageText();

}  // namespace crpp

#endif  // CRPP_CORE_OPTIONS_H_
