#define BOOST_TEST_MODULE options
#include "core/options.h"

#include <stdlib.h>

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/config_file.h"
#include "core/option_table.h"

namespace crpp {
namespace {

// An environment with no config file anywhere, so that tests never see the machine's
// /etc/criu/default.conf or the caller's $HOME.
ParseEnvironment NoConfig() {
  ParseEnvironment env;
  env.global_config = "/nonexistent/crpp-options-test/default.conf";
  return env;
}

absl::StatusOr<Options> Parse(std::vector<std::string> args,
                              const ParseEnvironment& env = NoConfig()) {
  return ParseCommandLine(args, env);
}

Options MustParse(std::vector<std::string> args, const ParseEnvironment& env = NoConfig()) {
  absl::StatusOr<Options> opts = Parse(args, env);
  BOOST_TEST_REQUIRE(opts.ok(), std::string(opts.status().message()));
  return *std::move(opts);
}

// The error message of a parse that must fail.
std::string ErrorOf(std::vector<std::string> args, const ParseEnvironment& env = NoConfig()) {
  absl::StatusOr<Options> opts = Parse(args, env);
  BOOST_TEST_REQUIRE(!opts.ok());
  BOOST_TEST((opts.status().code() == absl::StatusCode::kInvalidArgument));
  return std::string(opts.status().message());
}

bool Contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// A fresh directory for config files, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        (base != nullptr ? std::string(base) : std::filesystem::temp_directory_path().string()) +
        "/options_test.XXXXXX";
    BOOST_TEST_REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& text) const {
    const std::string file = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(file).parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }

 private:
  std::string path_;
};

BOOST_AUTO_TEST_SUITE(commands)

BOOST_AUTO_TEST_CASE(each_command_parses) {
  BOOST_TEST((MustParse({"dump", "-t", "1"}).command == Command::kDump));
  BOOST_TEST((MustParse({"pre-dump", "-t", "1"}).command == Command::kPreDump));
  BOOST_TEST((MustParse({"restore"}).command == Command::kRestore));
  BOOST_TEST((MustParse({"lazy-pages"}).command == Command::kLazyPages));
  BOOST_TEST((MustParse({"check"}).command == Command::kCheck));
  BOOST_TEST((MustParse({"page-server"}).command == Command::kPageServer));
  BOOST_TEST((MustParse({"service"}).command == Command::kService));
  BOOST_TEST((MustParse({"dedup"}).command == Command::kDedup));
  BOOST_TEST((MustParse({"cpuinfo", "dump"}).command == Command::kCpuinfoDump));
  BOOST_TEST((MustParse({"cpuinfo", "check"}).command == Command::kCpuinfoCheck));
  BOOST_TEST((MustParse({"exec"}).command == Command::kExec));
  BOOST_TEST((MustParse({"show"}).command == Command::kShow));
  BOOST_TEST(CommandName(Command::kCpuinfoCheck) == "cpuinfo");
  BOOST_TEST(CommandName(Command::kPreDump) == "pre-dump");
}

BOOST_AUTO_TEST_CASE(swrk_takes_exactly_one_fd) {
  Options opts = MustParse({"swrk", "7"});
  BOOST_TEST((opts.command == Command::kSwrk));
  BOOST_TEST(opts.swrk_fd == 7);
  BOOST_TEST(Contains(ErrorOf({"swrk"}), "usage: criu swrk <fd>"));
  BOOST_TEST(Contains(ErrorOf({"swrk", "1", "2"}), "usage: criu swrk <fd>"));
  // criu starts the worker before its option-combination checks.
  BOOST_TEST(MustParse({"-S", "swrk", "3"}).restore_sibling);
}

BOOST_AUTO_TEST_CASE(command_errors) {
  BOOST_TEST(ErrorOf({}) == "command is required");
  BOOST_TEST(ErrorOf({"-j"}) == "command is required");
  BOOST_TEST(ErrorOf({"frobnicate"}) == "unknown command frobnicate");
  BOOST_TEST(ErrorOf({"dump", "-t", "1", "extra"}) == "excessive parameter for command dump");
  BOOST_TEST(ErrorOf({"check", "a", "b"}) == "excessive parameters for command check");
  BOOST_TEST(ErrorOf({"cpuinfo"}) == "cpuinfo requires an action: dump or check");
  BOOST_TEST(Contains(ErrorOf({"cpuinfo", "frob"}), "unknown cpuinfo action frob"));
  BOOST_TEST(Contains(ErrorOf({"dump"}), "pid not specified"));
}

BOOST_AUTO_TEST_CASE(options_before_and_after_the_command) {
  Options before = MustParse({"-t", "42", "-D", "imgs", "dump"});
  Options after = MustParse({"dump", "-t", "42", "-D", "imgs"});
  Options mixed = MustParse({"-D", "imgs", "dump", "--tree=42"});
  for (const Options* o : {&before, &after, &mixed}) {
    BOOST_TEST((o->command == Command::kDump));
    BOOST_TEST(o->tree_pid == 42);
    BOOST_TEST(o->images_dir == "imgs");
    BOOST_TEST(o->command_args.empty());
  }
}

BOOST_AUTO_TEST_CASE(double_dash_ends_options) {
  Options opts = MustParse({"restore", "--exec-cmd", "--", "sh", "-c", "echo -t"});
  BOOST_TEST(opts.exec_cmd);
  BOOST_TEST((opts.exec_argv == std::vector<std::string>{"sh", "-c", "echo -t"}));
  // Without "--", "-c" is taken as one of our options, as criu (getopt) does.
  BOOST_TEST(ErrorOf({"restore", "--exec-cmd", "sh", "-c", "x"}) == "unknown option -c");
  BOOST_TEST(ErrorOf({"--exec-cmd", "restore"}) == "--exec-cmd requires a command");
  BOOST_TEST(Contains(ErrorOf({"--exec-cmd", "dump", "x"}), "restore command only"));
  BOOST_TEST(Contains(ErrorOf({"-d", "--exec-cmd", "restore", "x"}), "cannot be used together"));
}

BOOST_AUTO_TEST_CASE(help_and_version) {
  // An exact -h/--help anywhere wins before anything else is looked at, like criu's pre-scan.
  BOOST_TEST(MustParse({"dump", "--bogus", "-h"}).show_help);
  BOOST_TEST(MustParse({"--help"}).show_help);
  BOOST_TEST(MustParse({"-o", "--help"}).show_help);
  // Met during parsing (in a cluster, or abbreviated) it stops parsing there.
  BOOST_TEST(MustParse({"-jh", "--bogus"}).show_help);
  BOOST_TEST(MustParse({"--hel"}).show_help);
  // -V stops at its place: later options are not looked at, earlier ones are.
  BOOST_TEST(MustParse({"-V", "-t", "0"}).show_version);
  BOOST_TEST(MustParse({"--version", "--bogus"}).show_version);
  BOOST_TEST(ErrorOf({"-t", "0", "-V"}) == "invalid argument for -t: 0");
  const std::string usage = UsageText();
  for (std::string_view word : {"dump", "pre-dump", "restore", "check", "page-server", "service",
                                "dedup", "lazy-pages", "cpuinfo", "--images-dir"}) {
    BOOST_TEST(Contains(usage, word), word);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(spellings)

// Every option with a short letter means the same in all of its spellings.
BOOST_AUTO_TEST_CASE(short_and_long_forms_agree) {
  struct Case {
    std::string short_form, long_form, value;
    std::string Options::*field;
  };
  const Case cases[] = {
      {"-D", "images-dir", "d1", &Options::images_dir},
      {"-W", "work-dir", "w1", &Options::work_dir},
  };
  for (const Case& c : cases) {
    const std::string flag = c.short_form;
    const std::string name = "--" + c.long_form;
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"check", flag, c.value},
                                               {"check", flag + c.value},
                                               {"check", name, c.value},
                                               {"check", name + "=" + c.value}}) {
      const Options opts = MustParse(args);
      const std::string& got = opts.*c.field;
      BOOST_TEST(got == c.value);
    }
  }
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"-t", "5"}, {"-t5"}, {"--tree", "5"}, {"--tree=5"}, {"--tre=5"}}) {
    std::vector<std::string> full = args;
    full.push_back("dump");
    BOOST_TEST(MustParse(full).tree_pid == 5);
  }
  BOOST_TEST(*MustParse({"check", "-o", "x.log"}).log_file == "x.log");
  BOOST_TEST(*MustParse({"check", "--log-file=x.log"}).log_file == "x.log");
  BOOST_TEST(*MustParse({"restore", "-r", "/r"}).root == "/r");
  BOOST_TEST(*MustParse({"restore", "--root", "/r"}).root == "/r");
  BOOST_TEST(*MustParse({"check", "-L", "/p"}).libdir == "/p");
  BOOST_TEST(*MustParse({"check", "--libdir=/p"}).libdir == "/p");
  BOOST_TEST(MustParse({"restore", "-J", "net:1"}).join_ns.at(0) == "net:1");
  BOOST_TEST(MustParse({"restore", "--join-ns=uts:/x"}).join_ns.at(0) == "uts:/x");
  BOOST_TEST(MustParse({"restore", "-M", "k:v"}).ext_mount_map.at(0) == "k:v");
  BOOST_TEST(MustParse({"restore", "--ext-mount-map", "auto"}).autodetect_ext_mounts);
  BOOST_TEST(MustParse({"restore", "-d"}).restore_detached);
  BOOST_TEST(MustParse({"restore", "--restore-detached"}).restore_detached);
  BOOST_TEST(MustParse({"restore", "--daemon"}).restore_detached);
  BOOST_TEST(MustParse({"restore", "-d", "-S"}).restore_sibling);
  BOOST_TEST(MustParse({"restore", "-d", "--restore-sibling"}).restore_sibling);
  BOOST_TEST(MustParse({"dump", "-t1", "-s"}).leave_stopped);
  BOOST_TEST(MustParse({"dump", "-t1", "--leave-stopped"}).leave_stopped);
  BOOST_TEST(MustParse({"dump", "-t1", "-R"}).leave_running);
  BOOST_TEST(MustParse({"dump", "-t1", "--leave-running"}).leave_running);
  BOOST_TEST(MustParse({"dump", "-t1", "-j"}).shell_job);
  BOOST_TEST(MustParse({"dump", "-t1", "--shell-job"}).shell_job);
  BOOST_TEST(MustParse({"dump", "-t1", "-l"}).file_locks);
  BOOST_TEST(MustParse({"dump", "-t1", "--file-locks"}).file_locks);
  BOOST_TEST(MustParse({"dump", "-t1", "-x"}).ext_unix_sk);
  BOOST_TEST(MustParse({"dump", "-t1", "--ext-unix-sk"}).ext_unix_sk);
  BOOST_TEST(MustParse({"--version"}).show_version);
  BOOST_TEST(MustParse({"-V"}).show_version);
}

BOOST_AUTO_TEST_CASE(clustered_short_flags) {
  Options opts = MustParse({"dump", "-Rj", "-lt7"});
  BOOST_TEST(opts.leave_running);
  BOOST_TEST(opts.shell_job);
  BOOST_TEST(opts.file_locks);
  BOOST_TEST(opts.tree_pid == 7);
  // -t ends the cluster and takes the next word when nothing is attached.
  BOOST_TEST(MustParse({"dump", "-jt", "8"}).tree_pid == 8);
  // The last of -R/-s wins, as both select criu's final task state.
  Options last = MustParse({"dump", "-t1", "-Rs"});
  BOOST_TEST(last.leave_stopped);
  BOOST_TEST(!last.leave_running);
  // An optional argument takes the rest of the cluster: -x123,456.
  BOOST_TEST((MustParse({"dump", "-t1", "-x123,456"}).ext_unix_sk_ids ==
              std::vector<std::string>{"123", "456"}));
}

BOOST_AUTO_TEST_CASE(verbosity) {
  BOOST_TEST(MustParse({"check"}).verbosity == 2);
  BOOST_TEST(MustParse({"check", "-v"}).verbosity == 3);
  BOOST_TEST(MustParse({"check", "-vv"}).verbosity == 4);
  BOOST_TEST(MustParse({"check", "-vvv"}).verbosity == 5);
  BOOST_TEST(MustParse({"check", "-v", "-v"}).verbosity == 4);
  BOOST_TEST(MustParse({"check", "-v4"}).verbosity == 4);
  BOOST_TEST(MustParse({"check", "-v0"}).verbosity == 0);
  BOOST_TEST(MustParse({"check", "--verbosity=3"}).verbosity == 3);
  BOOST_TEST(MustParse({"check", "--verbosity"}).verbosity == 3);
  BOOST_TEST(MustParse({"check", "-v4", "-v"}).verbosity == 5);
  // criu's quirks: "-verbosity=N" is -v with the argument "erbosity=N", i.e. atoi() == 0 ...
  BOOST_TEST(MustParse({"check", "-verbosity=0"}).verbosity == 0);
  BOOST_TEST(MustParse({"check", "-verbosity=4"}).verbosity == 0);
  // ... "-vR" is -v with the argument "R" (level 0), not -v and -R ...
  Options vr = MustParse({"dump", "-t1", "-vR"});
  BOOST_TEST(vr.verbosity == 0);
  BOOST_TEST(!vr.leave_running);
  // ... and an optional argument is never taken from the next word.
  BOOST_TEST(ErrorOf({"-v", "4", "check"}) == "unknown command 4");
  BOOST_TEST(ErrorOf({"check", "--verbosity", "4"}) == "excessive parameter for command check");
}

BOOST_AUTO_TEST_CASE(no_forms) {
  Options opts = MustParse({"restore", "--tcp-established", "--no-tcp-established", "--shell-job",
                            "--no-shell-job", "--no-file-locks"});
  BOOST_TEST(!opts.tcp_established);
  BOOST_TEST(!opts.shell_job);
  BOOST_TEST(!opts.file_locks);
  BOOST_TEST(!MustParse({"restore", "-d", "--no-daemon"}).restore_detached);
  BOOST_TEST(!MustParse({"restore", "-d", "--no-restore-detached"}).restore_detached);
  BOOST_TEST(MustParse({"restore", "--no-tcp-close", "--tcp-close"}).tcp_close);
  BOOST_TEST(!MustParse({"check", "--all", "--no-extra"}).check_extra);
  // Every "no-" spelling in the table negates its positive partner.
  for (const OptionSpec& spec : LongOptions()) {
    if (spec.value) continue;
    BOOST_TEST(spec.name.substr(0, 3) == "no-");
    const LongLookup positive = FindLongOption(spec.name.substr(3));
    BOOST_TEST_REQUIRE(positive.spec != nullptr);
    BOOST_TEST((positive.spec->id == spec.id));
  }
  // Only criu's boolean pairs have one.
  BOOST_TEST(ErrorOf({"dump", "--no-leave-running"}) == "unknown option --no-leave-running");
  BOOST_TEST(ErrorOf({"check", "--no-all"}) == "unknown option --no-all");
}

BOOST_AUTO_TEST_CASE(abbreviations) {
  BOOST_TEST(MustParse({"restore", "--tcp-est"}).tcp_established);
  BOOST_TEST(MustParse({"check", "--images=d"}).images_dir == "d");
  const std::string ambiguous = ErrorOf({"restore", "--tcp"});
  BOOST_TEST(ambiguous ==
             "option --tcp is ambiguous; possibilities: --tcp-established --tcp-close");
  BOOST_TEST(Contains(ErrorOf({"check", "--v=3"}), "is ambiguous"));
  // An exact name beats longer ones it prefixes: --tls vs --tls-cert.
  BOOST_TEST(MustParse({"page-server", "--tls"}).tls);
}

BOOST_AUTO_TEST_CASE(unknown_options_and_arguments) {
  BOOST_TEST(ErrorOf({"dump", "--frobnicate"}) == "unknown option --frobnicate");
  BOOST_TEST(ErrorOf({"dump", "--frobnicate=1"}) == "unknown option --frobnicate");
  BOOST_TEST(ErrorOf({"dump", "-Z"}) == "unknown option -Z");
  BOOST_TEST(ErrorOf({"dump", "-jZ"}) == "unknown option -Z");
  BOOST_TEST(ErrorOf({"dump", "-t"}) == "option -t requires an argument");
  BOOST_TEST(ErrorOf({"dump", "--tree"}) == "option --tree requires an argument");
  BOOST_TEST(ErrorOf({"check", "-D"}) == "option -D requires an argument");
  BOOST_TEST(ErrorOf({"dump", "--shell-job=yes"}) ==
             "option --shell-job doesn't allow an argument");
  // A required argument is the next word even if it looks like an option.
  BOOST_TEST(MustParse({"check", "-o", "-j"}).log_file.value() == "-j");
  // An optional argument only attaches: "full" here is a stray positional word.
  BOOST_TEST(ErrorOf({"restore", "--manage-cgroups", "full"}) ==
             "excessive parameter for command restore");
}

BOOST_AUTO_TEST_CASE(value_validation) {
  BOOST_TEST(ErrorOf({"dump", "-t", "0"}) == "invalid argument for -t: 0");
  BOOST_TEST(ErrorOf({"dump", "--tree=abc"}) == "invalid argument for --tree: abc");
  BOOST_TEST(MustParse({"dump", "-t", "5x"}).tree_pid == 5);  // atoi(), as criu.
  BOOST_TEST(
      (MustParse({"pre-dump", "-t1", "--pre-dump-mode=read"}).pre_dump_mode == PreDumpMode::kRead));
  BOOST_TEST((MustParse({"pre-dump", "-t1", "--pre-dump-mode", "splice"}).pre_dump_mode ==
              PreDumpMode::kSplice));
  BOOST_TEST(Contains(ErrorOf({"pre-dump", "-t1", "--pre-dump-mode=READ"}),
                      "invalid argument for --pre-dump-mode: READ"));
  BOOST_TEST(MustParse({"page-server", "--port", "65535"}).port == 65535);
  BOOST_TEST(MustParse({"page-server", "--port=-1"}).port == 65535);
  BOOST_TEST(ErrorOf({"page-server", "--port", "65536"}) == "invalid argument for --port: 65536");
  BOOST_TEST(MustParse({"dump", "-t1", "--ghost-limit", "2M"}).ghost_limit == 2u << 20);
  BOOST_TEST(MustParse({"dump", "-t1", "--ghost-limit", "3K"}).ghost_limit == 3u << 10);
  BOOST_TEST(MustParse({"dump", "-t1", "--timeout", "30"}).timeout == 30u);
  BOOST_TEST(MustParse({"dump", "-t1", "--cpu-cap=none"}).cpu_cap == kCpuCapNone);
  BOOST_TEST(MustParse({"dump", "-t1", "--cpu-cap"}).cpu_cap == (kCpuCapAll | kCpuCapImage));
  BOOST_TEST(MustParse({"dump", "-t1", "--cpu-cap=^fpu"}).cpu_cap == (kCpuCapIns | kCpuCapImage));
  BOOST_TEST(Contains(ErrorOf({"dump", "-t1", "--cpu-cap=gpu"}), "--cpu-cap"));
  Options cg = MustParse({"restore", "--manage-cgroups=full"});
  BOOST_TEST(cg.manage_cgroups);
  BOOST_TEST((cg.manage_cgroups_mode == CgroupMode::kFull));
  BOOST_TEST((MustParse({"restore", "--manage-cgroups"}).manage_cgroups_mode == CgroupMode::kSoft));
  BOOST_TEST(Contains(ErrorOf({"restore", "--manage-cgroups=bad"}), "--manage-cgroups"));
  BOOST_TEST(Contains(ErrorOf({"restore", "--file-validation=x"}), "--file-validation"));
  BOOST_TEST(Contains(ErrorOf({"dump", "-t1", "--network-lock=skip"}), "--network-lock"));
  BOOST_TEST(ErrorOf({"restore", "--empty-ns", "pid"}) == "unsupported empty namespace: pid");
  BOOST_TEST(Contains(ErrorOf({"restore", "-J", "pid:1"}), "invalid argument for -J: pid:1"));
  BOOST_TEST(Contains(ErrorOf({"restore", "-J", "net"}), "invalid argument for -J: net"));
  BOOST_TEST(Contains(ErrorOf({"restore", "--veth-pair", "a"}), "--veth-pair: a"));
  BOOST_TEST(Contains(ErrorOf({"restore", "--inherit-fd", "fd[x]:y"}), "--inherit-fd"));
  BOOST_TEST(Contains(ErrorOf({"restore", "--inherit-fd", "fd[3]:"}), "--inherit-fd"));
  BOOST_TEST(MustParse({"restore", "--inherit-fd", "fd[3]:pipe[1]"}).inherit_fd.size() == 1u);
  BOOST_TEST(Contains(ErrorOf({"dump", "-t1", "--ext-unix-sk=12a"}), "--ext-unix-sk"));
  BOOST_TEST(Contains(ErrorOf({"dump", "-t1", "--status-fd", "x"}), "--status-fd"));
  BOOST_TEST(Contains(ErrorOf({"dump", "-t1", "--ms"}), "--ms is deprecated"));
  BOOST_TEST(Contains(ErrorOf({"check", "-o", ""}), "empty log file name"));
}

BOOST_AUTO_TEST_CASE(combinations) {
  BOOST_TEST(Contains(ErrorOf({"restore", "-S"}), "--restore-sibling only makes sense"));
  BOOST_TEST(Contains(ErrorOf({"dump", "-t1", "--inherit-fd", "fd[1]:x"}), "restore-only"));
  BOOST_TEST(Contains(ErrorOf({"pre-dump", "-t1", "--lazy-pages"}), "--lazy-pages"));
  BOOST_TEST(Contains(ErrorOf({"check", "--stream"}), "--stream cannot be used with the check"));
  BOOST_TEST(MustParse({"dump", "-t1", "--stream"}).stream);
  BOOST_TEST(Contains(ErrorOf({"dump", "-t1", "--mntns-compat-mode"}), "only valid on restore"));
  BOOST_TEST(Contains(ErrorOf({"restore", "-J", "net:1", "--empty-ns", "net"}), "conflicting"));
  BOOST_TEST(MustParse({"restore", "-t", "3"}).warnings.size() == 1u);
  BOOST_TEST(MustParse({"restore", "--network-lock", "nftables"}).warnings.size() == 1u);
}

BOOST_AUTO_TEST_CASE(recorded_options) {
  Options opts = MustParse(
      {"-j", "dump", "--external", "a", "-t", "1", "--external=b", "--no-tcp-established", "-v4"});
  BOOST_TEST((opts.set_options == std::vector<std::string>{"shell-job", "external", "tree",
                                                           "no-tcp-established", "verbosity"}));
  BOOST_TEST((opts.option_values.at("external") == std::vector<std::string>{"a", "b"}));
  BOOST_TEST((opts.option_values.at("verbosity") == std::vector<std::string>{"4"}));
  BOOST_TEST(opts.option_values.at("shell-job").empty());
  BOOST_TEST((opts.external == std::vector<std::string>{"a", "b"}));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(config_files)

BOOST_AUTO_TEST_CASE(tokenizer_follows_criu) {
  auto words = [](std::string_view text) {
    absl::StatusOr<std::vector<std::string>> w = TokenizeConfig(text, "t.conf");
    BOOST_TEST_REQUIRE(w.ok(), std::string(w.status().message()));
    return *w;
  };
  using V = std::vector<std::string>;
  BOOST_TEST((words("tcp-established\n# note\n\n  work-dir /w  # c\n") ==
              V{"--tcp-established", "--work-dir", "/w"}));
  BOOST_TEST((words("lsm-profile \"selinux:a b\"\n") == V{"--lsm-profile", "selinux:a b"}));
  BOOST_TEST((words("veth-pair \"a \\\"q\\\" b\"\n") == V{"--veth-pair", "a \"q\" b"}));
  BOOST_TEST((words("veth-pair \"\"\n") == V{"--veth-pair", ""}));
  BOOST_TEST((words("veth-pair \"a#b\"\n") == V{"--veth-pair", "a"}));
  BOOST_TEST((words("veth-pair a b\n") == V{"--veth-pair", "a"}));
  BOOST_TEST((words("verbosity=4") == V{"--verbosity=4"}));
  BOOST_TEST((words("tcp-established -v4\n") == V{"--tcp-established", "-v4"}));
  BOOST_TEST((words("tcp-established\r\n") == V{"--tcp-established\r"}));
  BOOST_TEST((words("tcp-established\n   ") == V{"--tcp-established", "--"}));
  for (std::string_view bad :
       {"veth-pair a b c\n", "veth-pair \"a b\" \"c\"\n", "veth-pair \"ab\n", "veth-pair \"\n",
        "tree 5 -j\n", "work-dir \"/home/USERNAME/criu/my \\\"work\\\" directory\"\n"}) {
    absl::StatusOr<std::vector<std::string>> w = TokenizeConfig(bad, "t.conf");
    BOOST_TEST(!w.ok(), bad);
    BOOST_TEST(Contains(std::string(w.status().message()), "t.conf, line 1"), bad);
  }
}

BOOST_AUTO_TEST_CASE(sources_and_order) {
  TempDir dir;
  ParseEnvironment env;
  env.global_config = dir.Write("etc/default.conf", "external g\ntcp-established\n");
  env.home_dir = dir.path() + "/home";
  dir.Write("home/.criu/default.conf", "external h\nlog-file home.log\n");
  env.config_file_env = dir.Write("env.conf", "external e\n");
  const std::string explicit_conf = dir.Write("explicit.conf", "external x\n");

  Options all = MustParse({"restore", "--external", "c"}, env);
  BOOST_TEST((all.external == std::vector<std::string>{"g", "h", "e", "c"}));
  BOOST_TEST(all.tcp_established);
  BOOST_TEST(all.log_file.value() == "home.log");
  BOOST_TEST(all.config_files.size() == 3u);
  // The command line overrides the files; booleans via their --no- form.
  BOOST_TEST(!MustParse({"restore", "--no-tcp-established"}, env).tcp_established);

  // --config replaces the default files but $CRIU_CONFIG_FILE is still read, as in criu.
  Options with_config = MustParse({"restore", "--config", explicit_conf}, env);
  BOOST_TEST((with_config.external == std::vector<std::string>{"e", "x"}));
  Options with_eq = MustParse({"restore", "--config=" + explicit_conf}, env);
  BOOST_TEST((with_eq.external == std::vector<std::string>{"e", "x"}));

  // --no-default-config may be repeated; the environment's file still counts.
  Options no_default = MustParse({"--no-default-config", "restore", "--no-default-config"}, env);
  BOOST_TEST((no_default.external == std::vector<std::string>{"e"}));
  BOOST_TEST(!no_default.tcp_established);
  env.config_file_env.reset();
  BOOST_TEST(MustParse({"--no-default-config", "--no-default-config", "restore"}, env)
                 .config_files.empty());

  // A --config file that does not exist is skipped silently, as criu does.
  Options missing = MustParse({"restore", "--config", dir.path() + "/nope.conf"}, env);
  BOOST_TEST(missing.external.empty());
  BOOST_TEST(missing.config_files.empty());

  // Without a home directory the user file is skipped.
  env.home_dir.reset();
  BOOST_TEST((MustParse({"restore"}, env).external == std::vector<std::string>{"g"}));
}

BOOST_AUTO_TEST_CASE(config_contents) {
  TempDir dir;
  ParseEnvironment env = NoConfig();
  auto with = [&](const std::string& text) {
    env.config_file_env = dir.Write("c.conf", text);
    return env;
  };
  Options opts =
      MustParse({"dump", "-t", "1"},
                with("# a comment\nshell-job\nwork-dir \"/w d\"\nimages-dir=/i\nverbosity 4\n"
                     "log-file dump.log   # trailing comment\ntcp-established stray-word\n"));
  BOOST_TEST(opts.shell_job);
  BOOST_TEST(opts.work_dir == "/w d");
  BOOST_TEST(opts.images_dir == "/i");
  // As in criu, "verbosity 4" is --verbosity without an argument (optional arguments only
  // attach with '='), so it adds one and "4" is a stray word; "verbosity=4" sets 4.
  BOOST_TEST(opts.verbosity == 3);
  BOOST_TEST(MustParse({"check"}, with("verbosity=4\n")).verbosity == 4);
  BOOST_TEST(opts.log_file.value() == "dump.log");
  BOOST_TEST(opts.tcp_established);  // "stray-word" is ignored, like criu's getopt leftovers.

  // Errors name the file.
  const std::string bad = ErrorOf({"restore"}, with("bogus-option\n"));
  BOOST_TEST(Contains(bad, "config file " + dir.path() + "/c.conf: unknown option --bogus"));
  BOOST_TEST(Contains(ErrorOf({"restore"}, with("veth-pair a b c\n")), "line 1"));
  // A required argument at the end of a file does not reach into the command line.
  BOOST_TEST(Contains(ErrorOf({"restore"}, with("work-dir\n")), "requires an argument"));
  // -h in a file asks for help, as in criu.
  BOOST_TEST(MustParse({"restore"}, with("help\n")).show_help);
}

BOOST_AUTO_TEST_CASE(pre_scan_quirks) {
  TempDir dir;
  ParseEnvironment env = NoConfig();
  env.home_dir = dir.path();
  dir.Write(".criu/default.conf", "external home\n");
  const std::string conf = dir.Write("x.conf", "external x\n");
  // An abbreviated --conf is accepted by the parser but, as in criu, reads nothing and does
  // not disable the default files.
  BOOST_TEST(
      (MustParse({"restore", "--conf", conf}, env).external == std::vector<std::string>{"home"}));
  // criu spots "--config=" anywhere inside a word, even in another option's value.
  BOOST_TEST((MustParse({"restore", "--pidfile", "p--config=" + conf}, env).external ==
              std::vector<std::string>{"x"}));
}

BOOST_AUTO_TEST_CASE(deprecated_from_environment) {
  ParseEnvironment env = NoConfig();
  BOOST_TEST(!MustParse({"check"}, env).deprecated);
  env.deprecated_env = true;
  BOOST_TEST(MustParse({"check", "--no-deprecated"}, env).deprecated);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(helpers)

BOOST_AUTO_TEST_CASE(check_supported) {
  const Options opts = MustParse({"dump", "-t", "1", "-j", "--tcp-established", "-v4",
                                  "--no-link-remap", "--no-default-config"});
  const std::string_view all[] = {"tree", "shell-job", "tcp-established", "verbosity",
                                  "link-remap"};
  BOOST_TEST(CheckSupported(opts, all).ok());
  // The first unsupported option in command-line order is named, by its long name.
  const std::string_view some[] = {"tree", "verbosity", "link-remap"};
  absl::Status status = CheckSupported(opts, some);
  BOOST_TEST((status.code() == absl::StatusCode::kInvalidArgument));
  BOOST_TEST(std::string(status.message()) == "option --shell-job is not supported yet");
  // A --no- form is named as given when its option is not supported.
  const std::string_view no_remap[] = {"tree", "shell-job", "tcp-established", "verbosity"};
  BOOST_TEST(std::string(CheckSupported(opts, no_remap).message()) ==
             "option --no-link-remap is not supported yet");
}

BOOST_AUTO_TEST_CASE(log_path) {
  BOOST_TEST(ResolveLogPath(MustParse({"check"})) == "");              // stderr
  BOOST_TEST(ResolveLogPath(MustParse({"check", "-o", "-"})) == "-");  // stdout
  BOOST_TEST(ResolveLogPath(MustParse({"check", "-o", "c.log"})) == "c.log");
  // -o is relative to -W, which defaults to -D.
  Options d = MustParse({"check", "-D", "imgs", "-o", "c.log"});
  BOOST_TEST(d.work_dir == "imgs");
  BOOST_TEST(ResolveLogPath(d) == "imgs/c.log");
  BOOST_TEST(ResolveLogPath(MustParse({"check", "-D", "imgs", "-W", "/work/", "-o", "c.log"})) ==
             "/work/c.log");
  BOOST_TEST(ResolveLogPath(MustParse({"check", "-D", "imgs", "-o", "/abs/c.log"})) ==
             "/abs/c.log");
  BOOST_TEST(ResolveLogPath(MustParse({"check", "-W", "/", "-o", "c.log"})) == "/c.log");
  BOOST_TEST(ResolveWorkPath(MustParse({"check", "-W", "w"}), "pid") == "w/pid");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace crpp
