#include "core/json.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace crpp {

Json Json::Bool(bool b) {
  Json j;
  j.type_ = Type::kBool;
  j.bool_ = b;
  return j;
}

Json Json::Int(int64_t v) {
  Json j;
  j.type_ = Type::kNumber;
  j.text_ = absl::StrCat(v);
  return j;
}

Json Json::Uint(uint64_t v) {
  Json j;
  j.type_ = Type::kNumber;
  j.text_ = absl::StrCat(v);
  return j;
}

Json Json::Double(double v) {
  Json j;
  j.type_ = Type::kNumber;
  if (std::isnan(v)) {
    j.text_ = "NaN";  // what Python's json.dumps writes
  } else if (std::isinf(v)) {
    j.text_ = v > 0 ? "Infinity" : "-Infinity";
  } else {
    // Shortest text that reads back to the same double, as Python's repr.
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, res.ptr);
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    j.text_ = s;
  }
  return j;
}

Json Json::NumberText(std::string text) {
  Json j;
  j.type_ = Type::kNumber;
  j.text_ = std::move(text);
  return j;
}

Json Json::String(std::string s) {
  Json j;
  j.type_ = Type::kString;
  j.text_ = std::move(s);
  return j;
}

Json Json::Array() {
  Json j;
  j.type_ = Type::kArray;
  return j;
}

Json Json::Object() {
  Json j;
  j.type_ = Type::kObject;
  return j;
}

Json& Json::Push(Json v) {
  items_.push_back(std::move(v));
  return items_.back();
}

Json& Json::Set(std::string key, Json v) {
  for (Member& m : members_) {
    if (m.first == key) {
      m.second = std::move(v);
      return m.second;
    }
  }
  members_.emplace_back(std::move(key), std::move(v));
  return members_.back().second;
}

const Json* Json::Find(std::string_view key) const {
  for (const Member& m : members_) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

namespace {

// Decodes one UTF-8 sequence at s[i]; on invalid input returns the byte itself
// so that no input makes the printer fail.
uint32_t NextCodePoint(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len <= 1 || i + len > s.size()) {
    ++i;
    return c;
  }
  uint32_t cp = c & (0x7f >> len);
  for (int k = 1; k < len; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) {
      ++i;
      return c;
    }
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  i += len;
  return cp;
}

void Quote(std::string& out, std::string_view s) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = NextCodePoint(s, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
    }
    if (cp >= 0x20 && cp < 0x7f) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x10000) {
      absl::StrAppendFormat(&out, "\\u%04x", cp);
    } else {
      cp -= 0x10000;
      absl::StrAppendFormat(&out, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    }
  }
  out.push_back('"');
}

void Newline(std::string& out, int indent, int depth) {
  out.push_back('\n');
  out.append(static_cast<size_t>(indent * depth), ' ');
}

}  // namespace

void Json::DumpTo(std::string& out, int indent, int depth) const {
  switch (type_) {
    case Type::kNull:
      out += "null";
      return;
    case Type::kBool:
      out += bool_ ? "true" : "false";
      return;
    case Type::kNumber:
      out += text_;
      return;
    case Type::kString:
      Quote(out, text_);
      return;
    case Type::kArray:
    case Type::kObject:
      break;
  }
  bool is_arr = type_ == Type::kArray;
  size_t n = is_arr ? items_.size() : members_.size();
  out.push_back(is_arr ? '[' : '{');
  if (n == 0) {
    out.push_back(is_arr ? ']' : '}');
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += indent >= 0 ? "," : ", ";
    if (indent >= 0) Newline(out, indent, depth + 1);
    if (is_arr) {
      items_[i].DumpTo(out, indent, depth + 1);
    } else {
      Quote(out, members_[i].first);
      out += ": ";
      members_[i].second.DumpTo(out, indent, depth + 1);
    }
  }
  if (indent >= 0) Newline(out, indent, depth);
  out.push_back(is_arr ? ']' : '}');
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(out, indent, 0);
  return out;
}

// ---- parser ----------------------------------------------------------------

namespace {

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  absl::StatusOr<Json> ParseDocument() {
    auto v = ParseValue(0);
    if (!v.ok()) return v;
    SkipSpace();
    if (pos_ != s_.size()) return Fail("unexpected text after the JSON value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 256;

  absl::Status Fail(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrFormat("JSON: at byte %d: %s", pos_, what));
  }

  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r' || s_[pos_] == '\n'))
      ++pos_;
  }

  bool Consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::StatusOr<Json> ParseValue(int depth) {
    if (depth > kMaxDepth) return Fail("nested too deeply");
    SkipSpace();
    if (pos_ >= s_.size()) return Fail("unexpected end of input");
    char c = s_[pos_];
    if (c == '{') return ParseObject(depth);
    if (c == '[') return ParseArray(depth);
    if (c == '"') {
      auto s = ParseString();
      if (!s.ok()) return s.status();
      return Json::String(std::move(*s));
    }
    if (Consume("true")) return Json::Bool(true);
    if (Consume("false")) return Json::Bool(false);
    if (Consume("null")) return Json::Null();
    return ParseNumber();
  }

  absl::StatusOr<Json> ParseNumber() {
    size_t start = pos_;
    // Python's json module writes these for non-finite floats.
    if (Consume("NaN") || Consume("Infinity") || Consume("-Infinity")) {
      return Json::NumberText(std::string(s_.substr(start, pos_ - start)));
    }
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    size_t digits = pos_;
    while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (pos_ == digits) return Fail("expected a value");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      size_t exp = pos_;
      while (pos_ < s_.size() && isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (pos_ == exp) return Fail("bad exponent");
    }
    // The text is kept as written; conversions check its range when used.
    return Json::NumberText(std::string(s_.substr(start, pos_ - start)));
  }

  absl::StatusOr<std::string> ParseString() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) return Fail("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return Fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'u': {
          auto cp = ParseHex4();
          if (!cp.ok()) return cp.status();
          uint32_t v = *cp;
          if (v >= 0xd800 && v < 0xdc00 && Consume("\\u")) {
            auto lo = ParseHex4();
            if (!lo.ok()) return lo.status();
            if (*lo < 0xdc00 || *lo >= 0xe000) return Fail("bad surrogate pair");
            v = 0x10000 + ((v - 0xd800) << 10) + (*lo - 0xdc00);
          }
          AppendUtf8(out, v);
          break;
        }
        default:
          return Fail(absl::StrFormat("bad escape \\%c", e));
      }
    }
  }

  absl::StatusOr<uint32_t> ParseHex4() {
    if (pos_ + 4 > s_.size()) return Fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= h - '0';
      } else if (h >= 'a' && h <= 'f') {
        v |= h - 'a' + 10;
      } else if (h >= 'A' && h <= 'F') {
        v |= h - 'A' + 10;
      } else {
        return Fail("bad hex digit in \\u escape");
      }
    }
    return v;
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  absl::StatusOr<Json> ParseArray(int depth) {
    ++pos_;
    Json arr = Json::Array();
    SkipSpace();
    if (Consume("]")) return arr;
    while (true) {
      auto v = ParseValue(depth + 1);
      if (!v.ok()) return v;
      arr.Push(std::move(*v));
      SkipSpace();
      if (Consume("]")) return arr;
      if (!Consume(",")) return Fail("expected ',' or ']' in array");
    }
  }

  absl::StatusOr<Json> ParseObject(int depth) {
    ++pos_;
    Json obj = Json::Object();
    SkipSpace();
    if (Consume("}")) return obj;
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a string key");
      auto key = ParseString();
      if (!key.ok()) return key.status();
      SkipSpace();
      if (!Consume(":")) return Fail("expected ':' after key");
      auto v = ParseValue(depth + 1);
      if (!v.ok()) return v;
      obj.Set(std::move(*key), std::move(*v));
      SkipSpace();
      if (Consume("}")) return obj;
      if (!Consume(",")) return Fail("expected ',' or '}' in object");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<Json> Json::Parse(std::string_view text) { return Parser(text).ParseDocument(); }

absl::StatusOr<int64_t> Json::AsInt64() const {
  int64_t v;
  if (type_ != Type::kNumber || !absl::SimpleAtoi(text_, &v)) {
    return absl::InvalidArgumentError(absl::StrFormat("'%s' is not a 64-bit integer", text_));
  }
  return v;
}

absl::StatusOr<uint64_t> Json::AsUint64() const {
  uint64_t v;
  if (type_ != Type::kNumber || !absl::SimpleAtoi(text_, &v)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not an unsigned 64-bit integer", text_));
  }
  return v;
}

absl::StatusOr<double> Json::AsDouble() const {
  if (type_ == Type::kNumber) {
    if (text_ == "NaN") return NAN;
    if (text_ == "Infinity") return INFINITY;
    if (text_ == "-Infinity") return -INFINITY;
    double d;
    if (absl::SimpleAtod(text_, &d)) return d;
  }
  return absl::InvalidArgumentError(absl::StrFormat("'%s' is not a number", text_));
}

}  // namespace crpp
