// A small JSON value with a parser and a printer that writes what Python's
// json.dumps writes (crit's output format): ", " and ": " separators on one
// line, or indent=N with "," line ends; ASCII-only output with \uXXXX escapes.
//
// Numbers keep their source text, so 64-bit integers survive a round trip
// exactly (a double would not hold them).
#ifndef CRPP_CORE_JSON_H_
#define CRPP_CORE_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp {

class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Member = std::pair<std::string, Json>;

  Json() = default;
  static Json Null() { return Json(); }
  static Json Bool(bool b);
  static Json Int(int64_t v);
  static Json Uint(uint64_t v);
  static Json Double(double v);
  // A number given by its JSON text, which must be valid JSON number syntax.
  static Json NumberText(std::string text);
  static Json String(std::string s);
  static Json Array();
  static Json Object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool bool_value() const { return bool_; }
  // The number as written ("42", "-1", "1.5e3") or the string's contents.
  const std::string& text() const { return text_; }
  const std::vector<Json>& items() const { return items_; }
  const std::vector<Member>& members() const { return members_; }

  // Arrays and objects are built in order; object keys keep insertion order.
  Json& Push(Json v);
  Json& Set(std::string key, Json v);
  const Json* Find(std::string_view key) const;

  // Python-compatible text; indent < 0 means one line.
  std::string Dump(int indent = -1) const;

  static absl::StatusOr<Json> Parse(std::string_view text);

  // Number conversions that fail on non-integers or out-of-range values.
  absl::StatusOr<int64_t> AsInt64() const;
  absl::StatusOr<uint64_t> AsUint64() const;
  absl::StatusOr<double> AsDouble() const;

 private:
  void DumpTo(std::string& out, int indent, int depth) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<Json> items_;
  std::vector<Member> members_;
};

}  // namespace crpp

#endif  // CRPP_CORE_JSON_H_
