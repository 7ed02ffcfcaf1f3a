#include "tools/pdum/args.h"

#include "absl/strings/str_format.h"

namespace crpp::pdum {
namespace {

std::string OffName(const OptionSpec& s) {
  return s.off_name.empty() ? "no-" + std::string(s.name) : std::string(s.off_name);
}

}  // namespace

std::string ParsedArgs::Value(std::string_view name, const std::string& fallback) const {
  auto it = values_.find(std::string(name));
  return it == values_.end() ? fallback : it->second;
}

bool ParsedArgs::On(std::string_view name) const {
  if (auto given = Given(name)) return *given;
  auto it = defaults_.find(std::string(name));
  return it != defaults_.end() && it->second;
}

std::optional<bool> ParsedArgs::Given(std::string_view name) const {
  auto it = switches_.find(std::string(name));
  if (it == switches_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<ParsedArgs> ParseArgs(std::span<const OptionSpec> specs,
                                     const std::vector<std::string>& args) {
  ParsedArgs out;
  for (const OptionSpec& s : specs) {
    if (s.kind == OptionSpec::kSwitch) out.defaults_[std::string(s.name)] = s.default_on;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--help" || word == "-h") {
      out.help_ = true;
      continue;
    }
    const OptionSpec* spec = nullptr;
    std::optional<std::string> inline_value;
    bool switch_value = true;
    if (word.starts_with("--")) {
      std::string name = word.substr(2);
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      for (const OptionSpec& s : specs) {
        if (s.name == name) {
          spec = &s;
        } else if (s.kind == OptionSpec::kSwitch && OffName(s) == name) {
          spec = &s;
          switch_value = false;
        }
      }
    } else if (word.size() >= 2 && word[0] == '-' && word[1] != '-') {
      for (const OptionSpec& s : specs) {
        if (s.short_name == word[1]) spec = &s;
      }
      if (spec != nullptr && word.size() > 2) inline_value = word.substr(2);  // -v4, -dDIR
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("unexpected argument '%s'", word));
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat("no such option: %s", word));
    }
    const std::string name(spec->name);
    if (spec->kind == OptionSpec::kSwitch) {
      if (inline_value) {
        return absl::InvalidArgumentError(absl::StrFormat("%s takes no value", word));
      }
      out.switches_[name] = switch_value;
      continue;
    }
    if (inline_value) {
      out.values_[name] = *inline_value;
    } else if (i + 1 < args.size()) {
      out.values_[name] = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrFormat("option %s requires an argument", word));
    }
  }
  return out;
}

std::string OptionsHelp(std::span<const OptionSpec> specs) {
  std::string out = "Options:\n";
  for (const OptionSpec& s : specs) {
    std::string left;
    if (s.kind == OptionSpec::kSwitch) {
      left = absl::StrFormat("--%s/--%s", std::string(s.name), OffName(s));
    } else {
      left = absl::StrFormat("--%s%s %s", std::string(s.name),
                             s.short_name ? absl::StrFormat(", -%c", s.short_name) : "",
                             std::string(s.metavar));
    }
    std::string help(s.help);
    if (s.kind == OptionSpec::kSwitch) {
      help += absl::StrFormat(" [default: %s]", s.default_on ? std::string(s.name) : OffName(s));
    }
    absl::StrAppendFormat(&out, "  %-36s %s\n", left, help);
  }
  absl::StrAppendFormat(&out, "  %-36s %s\n", "--help, -h", "Show this message and exit.");
  return out;
}

}  // namespace crpp::pdum
