#include "core/config_file.h"

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace crpp {
namespace {

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

absl::Status FormatError(std::string_view path, int line_no) {
  return absl::InvalidArgumentError(
      absl::StrFormat("config file %s, line %d: unsupported configuration file format "
                      "(one option per line, with at most one argument; see criu(8))",
                      path, line_no));
}

// True if `s` holds something other than blanks before a comment, ignoring its last character.
// criu's check stops one character short, and we keep that so that the same files pass.
bool HasExtraWords(std::string_view s, bool comment_ends_check) {
  if (s.find(' ') == std::string_view::npos) return false;
  for (size_t j = 0; j + 1 < s.size(); ++j) {
    if (comment_ends_check && s[j] == '#') return false;
    if (!IsSpace(s[j])) return true;
  }
  return false;
}

std::string DropQuoteEscapes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t j = 0; j < s.size(); ++j) {
    if (s[j] == '\\' && j + 1 < s.size() && s[j + 1] == '"') continue;
    out.push_back(s[j]);
  }
  return out;
}

// Appends the words of one line (without its '\n') to `words`.
absl::Status TokenizeLine(std::string_view line, bool had_newline, std::string_view path,
                          int line_no, std::vector<std::string>& words) {
  size_t pos = 0;
  while (pos < line.size() && IsSpace(line[pos])) ++pos;
  std::string_view rest = line.substr(pos);
  if (rest.empty() && had_newline) return absl::OkStatus();
  if (!rest.empty() && rest[0] == '#') return absl::OkStatus();

  size_t split = rest.find(' ');
  if (split == std::string_view::npos) split = rest.find('\t');
  if (split == std::string_view::npos) {
    words.push_back(absl::StrFormat("--%s", rest));
    return absl::OkStatus();
  }
  words.push_back(absl::StrFormat("--%s", rest.substr(0, split)));

  pos = split + 1;
  while (pos < rest.size() && IsSpace(rest[pos])) ++pos;
  if (pos < rest.size() && rest[pos] == '#') return absl::OkStatus();

  std::string value;
  bool quoted = false;
  if (pos < rest.size() && rest[pos] == '"') {
    quoted = true;
    const size_t start = pos + 1;
    if (start >= rest.size()) return FormatError(path, line_no);
    if (rest[start] == '"') {
      // "" is an empty argument; criu does not look at what follows it.
      words.emplace_back();
      return absl::OkStatus();
    }
    size_t close = start;
    do {
      close = rest.find('"', close + 1);
    } while (close != std::string_view::npos && rest[close - 1] == '\\');
    if (close == std::string_view::npos) return FormatError(path, line_no);
    if (HasExtraWords(rest.substr(close + 1), /*comment_ends_check=*/true)) {
      return FormatError(path, line_no);
    }
    value = DropQuoteEscapes(rest.substr(start, close - start));
  } else {
    value = DropQuoteEscapes(rest.substr(pos));
  }

  if (size_t hash = value.find('#'); hash != std::string::npos) value.resize(hash);
  if (!quoted) {
    if (size_t space = value.find(' '); space != std::string::npos) {
      if (HasExtraWords(std::string_view(value).substr(space), /*comment_ends_check=*/false)) {
        return FormatError(path, line_no);
      }
      value.resize(space);
    }
  }
  words.push_back(std::move(value));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> TokenizeConfig(std::string_view text,
                                                        std::string_view path) {
  std::vector<std::string> words;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t eol = text.find('\n');
    const bool had_newline = eol != std::string_view::npos;
    const std::string_view line = had_newline ? text.substr(0, eol) : text;
    absl::Status status = TokenizeLine(line, had_newline, path, line_no, words);
    if (!status.ok()) return status;
    text.remove_prefix(had_newline ? eol + 1 : text.size());
  }
  return words;
}

}  // namespace crpp
