#include "core/config_file.h"

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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

// True if `s` holds something other than blanks (before a comment, if `stop_at_comment`),
// ignoring its last character. Only looked at when `s` has a space at all. Both quirks are
// criu's, kept so that the same files pass.
bool HasExtraWords(std::string_view s, bool stop_at_comment) {
  if (s.find(' ') == std::string_view::npos) return false;
  for (size_t j = 0; j + 1 < s.size(); ++j) {
    if (stop_at_comment && s[j] == '#') return false;
    if (!IsSpace(s[j])) return true;
  }
  return false;
}

// Length of the NUL-terminated string starting at buf[from].
size_t CLength(const std::string& buf, size_t from) { return buf.find('\0', from) - from; }

// Finishes an argument the way criu does: in place, in a C buffer holding `raw`.
//
// criu drops the backslashes of \" by rewriting the buffer's beginning, cuts the string at its
// first '#', and then runs its "nothing after the argument" check, and cuts at a space, from a
// position `check_from` that is only meaningful for unquoted arguments without escapes (where
// it is the first space). For the others that position is off, so the check reads bytes left
// over from `raw` past the shortened string, or (when beyond the buffer) memory criu does not
// own, where in practice it finds nothing. We model the buffer byte for byte, so that criu's
// own documented example `work-dir "/home/USERNAME/criu/my \"work\" directory"` is rejected
// as criu 3.17.1 rejects it, and every argument criu accepts gets the same value.
std::optional<std::string> FinishArgument(std::string_view raw, size_t check_from) {
  std::string buf(raw);
  buf.push_back('\0');
  if (raw.find("\\\"") != std::string_view::npos) {
    size_t out = 0;
    for (size_t j = 0; j < raw.size(); ++j) {
      if (raw[j] == '\\' && j + 1 < raw.size() && raw[j + 1] == '"') continue;
      buf[out++] = raw[j];
    }
    buf[out] = '\0';
    check_from += raw.size() - out + 1;
  }
  if (const size_t hash = buf.find('#'); hash < CLength(buf, 0)) buf[hash] = '\0';
  if (check_from <= raw.size()) {
    const std::string_view tail(buf.data() + check_from, CLength(buf, check_from));
    if (const size_t space = tail.find(' '); space != std::string_view::npos) {
      if (HasExtraWords(tail, /*stop_at_comment=*/false)) return std::nullopt;
      buf[check_from + space] = '\0';
    }
  }
  buf.resize(CLength(buf, 0));
  return buf;
}

// Appends the words of one line (without its '\n') to `words`.
absl::Status TokenizeLine(std::string_view line, bool had_newline, std::string_view path,
                          int line_no, std::vector<std::string>& words) {
  size_t pos = 0;
  while (pos < line.size() && IsSpace(line[pos])) ++pos;
  const std::string_view rest = line.substr(pos);
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

  std::optional<std::string> value;
  if (pos < rest.size() && rest[pos] == '"') {
    const size_t start = pos + 1;
    if (start >= rest.size()) return FormatError(path, line_no);
    if (rest[start] == '"') {
      words.emplace_back();  // "" is an empty argument; criu ignores what follows it.
      return absl::OkStatus();
    }
    size_t close = start;
    do {
      close = rest.find('"', close + 1);
    } while (close != std::string_view::npos && rest[close - 1] == '\\');
    if (close == std::string_view::npos) return FormatError(path, line_no);
    if (HasExtraWords(rest.substr(close + 1), /*stop_at_comment=*/true)) {
      return FormatError(path, line_no);
    }
    value = FinishArgument(rest.substr(start, close - start), start + 1);
  } else {
    const std::string_view raw = rest.substr(pos);
    const size_t space = raw.find(' ');
    value = FinishArgument(raw, space == std::string_view::npos ? 0 : space);
  }
  if (!value.has_value()) return FormatError(path, line_no);
  words.push_back(*std::move(value));
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
