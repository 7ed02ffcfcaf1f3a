// pdum-criu: freeze a shell job in one terminal and thaw it in another, with
// the command names and options of pdum-criu (github.com/habemus-papadum/
// pdum_criu), run by crpp's engine in this process: no criu binary, no sudo.
//
//   pdum-criu shell freeze --dir DIR (--pid PID | --pgrep PATTERN) [...]
//   pdum-criu shell thaw --dir DIR [--pidfile F] [--detach] [--stdin F] [...]
//   pdum-criu shell beam (--pid PID | --pgrep PATTERN) [--dir DIR] [...]
//   pdum-criu doctor
//   pdum-criu version
#include <cstdio>
#include <string>
#include <vector>

#include "tools/pdum/cleanup_watcher.h"
#include "tools/pdum/doctor.h"
#include "tools/pdum/shell_commands.h"

namespace crpp::pdum {
namespace {

constexpr char kVersion[] = "0.1.0";

constexpr char kUsage[] =
    "Usage: pdum-criu COMMAND [ARGS]...\n"
    "\n"
    "Freeze a running job into a directory of images and thaw it later, here or on\n"
    "another terminal (crpp's engine, in this process: no criu binary, no sudo).\n"
    "\n"
    "Commands:\n"
    "  shell freeze  Freeze a running shell job into a CRIU image directory.\n"
    "  shell thaw    Restore a frozen job here, on this terminal or these pipes.\n"
    "  shell beam    Freeze a job and thaw it here at once.\n"
    "  doctor        Check what freezing and thawing need here; exit 0 when all is there.\n"
    "  version       Show the version.\n"
    "\n"
    "Run 'pdum-criu COMMAND --help' for a command's options.\n";

constexpr char kShellUsage[] =
    "Usage: pdum-criu shell COMMAND [ARGS]...\n"
    "\n"
    "Commands:\n"
    "  freeze  Freeze a running shell job into a CRIU image directory.\n"
    "  thaw    Restore a frozen job here.\n"
    "  beam    Freeze a job and thaw it here at once.\n";

int Main(int argc, char** argv) {
  // Line by line: a job thawed on our stdout writes into the same pipe.
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::string command = args.empty() ? "" : args[0];
  if (command.empty() || command == "--help" || command == "-h") {
    fputs(kUsage, stdout);
    return 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "version" || command == "--version") {
    printf("pdum-criu CLI (crpp)\nversion: %s\n", kVersion);
    return 0;
  }
  if (command == "doctor") return DoctorCommand(rest);
  if (command == kWatcherCommand) return RunCleanupWatcher(rest);
  if (command == "shell") {
    const std::string sub = rest.empty() ? "" : rest[0];
    const std::vector<std::string> words(rest.begin() + (rest.empty() ? 0 : 1), rest.end());
    if (sub == "freeze") return ShellFreeze(words);
    if (sub == "thaw") return ShellThaw(words);
    if (sub == "beam") return ShellBeam(words);
    if (sub.empty() || sub == "--help" || sub == "-h") {
      fputs(kShellUsage, stdout);
      return 0;
    }
    fprintf(stderr, "Error: No such command 'shell %s'.\n%s", sub.c_str(), kShellUsage);
    return 2;
  }
  fprintf(stderr, "Error: No such command '%s'.\n%s", command.c_str(), kUsage);
  return 2;
}

}  // namespace
}  // namespace crpp::pdum

int main(int argc, char** argv) { return crpp::pdum::Main(argc, argv); }
