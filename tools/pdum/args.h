// The command-line options of pdum-criu's commands, spelled as pdum-criu
// (a Typer program) spells them: `--dir D`, `--dir=D`, `-d D`, `-dD`, and
// switches in pairs (`--show-command/--hide-command`, `--cleanup/--no-cleanup`).
#ifndef CRPP_TOOLS_PDUM_ARGS_H_
#define CRPP_TOOLS_PDUM_ARGS_H_

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::pdum {

struct OptionSpec {
  enum Kind { kValue, kSwitch };
  std::string_view name;  // "dir": --dir VALUE
  char short_name = 0;    // 'd': -d VALUE (0: none)
  Kind kind = kValue;
  std::string_view metavar;  // kValue: "DIR" in the help
  std::string_view help;
  bool default_on = false;    // kSwitch: its value when not given
  std::string_view off_name;  // kSwitch: "hide-command" ("": "no-" + name)
};

class ParsedArgs {
 public:
  // --help or -h was given.
  bool help() const { return help_; }
  bool Has(std::string_view name) const { return values_.count(std::string(name)) > 0; }
  // The value of a kValue option, or `fallback` when it was not given.
  std::string Value(std::string_view name, const std::string& fallback = "") const;
  // A switch: as given, else its default.
  bool On(std::string_view name) const;
  // A switch as given, or nullopt.
  std::optional<bool> Given(std::string_view name) const;

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(std::span<const OptionSpec>,
                                              const std::vector<std::string>&);
  bool help_ = false;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> switches_;
  std::map<std::string, bool> defaults_;
};

// Parses `args` (the words after the command's name). InvalidArgument names
// the word at fault: an unknown option, a missing value, a stray word.
absl::StatusOr<ParsedArgs> ParseArgs(std::span<const OptionSpec> specs,
                                     const std::vector<std::string>& args);

// The "Options:" part of a command's help, one option a line.
std::string OptionsHelp(std::span<const OptionSpec> specs);

}  // namespace crpp::pdum

#endif  // CRPP_TOOLS_PDUM_ARGS_H_
