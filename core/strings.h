// String helpers on std::string_view.
//
// Debian's Abseil is built with its own absl::string_view (not an alias of
// std::string_view), so absl's string functions do not accept std::string_view
// arguments. These few helpers cover what the project needs without converting.
#ifndef CRPP_CORE_STRINGS_H_
#define CRPP_CORE_STRINGS_H_

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/strings/string_view.h"

namespace crpp {

inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

inline std::string_view Trim(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

inline std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

// Whole-string decimal parse; false on any stray character or overflow.
template <class Int>
bool ParseInt(std::string_view s, Int& out, int base = 10) {
  if (s.empty()) return false;
  auto res = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return res.ec == std::errc() && res.ptr == s.data() + s.size();
}

}  // namespace crpp

#endif  // CRPP_CORE_STRINGS_H_
