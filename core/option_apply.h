// What each of criu's options does to an Options value. Internal to the options library: the
// public entry point is ParseCommandLine() in core/options.h.
#ifndef CRPP_CORE_OPTION_APPLY_H_
#define CRPP_CORE_OPTION_APPLY_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/option_table.h"
#include "core/options.h"

namespace crpp {

// Applies one occurrence of an option and records it in set_options/option_values. `value` is
// the argument if one was given; `spelled` is "-t" or "--tree", whichever form was used, for
// error messages, as criu does. Validates values the way criu does while parsing, except
// checks that depend on the machine (does that fd or namespace file exist?), which belong to
// the commands.
absl::Status ApplyOption(const OptionSpec& spec, const std::optional<std::string>& value,
                         std::string_view spelled, Options& options);

}  // namespace crpp

#endif  // CRPP_CORE_OPTION_APPLY_H_
