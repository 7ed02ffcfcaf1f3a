#include "core/images/pb_json.h"

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/pretty_tables.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "opts.pb.h"

namespace crpp::images {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

const criu::CRIU_Opts& OptsOf(const FieldDescriptor* f) {
  return f->options().GetExtension(criu::criu);
}

bool IsInteger(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

bool IsSigned(const FieldDescriptor* f) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
         f->cpp_type() == FieldDescriptor::CPPTYPE_INT64;
}

// The integer value of field f (element `index` if repeated), widened.
uint64_t IntegerAt(const Message& m, const FieldDescriptor* f, int index) {
  const Reflection* r = m.GetReflection();
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return static_cast<uint64_t>(
          static_cast<int64_t>(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f)));
    case FieldDescriptor::CPPTYPE_INT64:
      return static_cast<uint64_t>(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
    case FieldDescriptor::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f);
    case FieldDescriptor::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f);
    default:
      return 0;
  }
}

Json PlainInteger(const FieldDescriptor* f, uint64_t v) {
  return IsSigned(f) ? Json::Int(static_cast<int64_t>(v)) : Json::Uint(v);
}

Json IntegerToJson(const FieldDescriptor* f, uint64_t v, bool pretty, bool hex) {
  if (!pretty) return PlainInteger(f, v);
  const criu::CRIU_Opts& o = OptsOf(f);
  if (hex || o.hex()) {
    if (IsSigned(f) && static_cast<int64_t>(v) < 0) {
      return Json::String(absl::StrFormat("-0x%x", -static_cast<int64_t>(v)));
    }
    return Json::String(absl::StrFormat("0x%x", v));
  }
  if (o.dev()) return Json::String(pretty::FormatDev(v, o.odev()));
  if (o.has_flags()) {
    std::string s;
    if (pretty::FormatFlags(o.flags(), v, s)) return Json::String(s);
    return Json::String(absl::StrFormat("0x%x", v));
  }
  if (o.has_dict()) {
    std::string s;
    if (pretty::FormatDict(o.dict(), f->name(), v, s)) return Json::String(s);
  }
  return PlainInteger(f, v);
}

Json MessageToJsonImpl(const Message& m, bool pretty, bool hex);

Json ScalarToJson(const Message& m, const FieldDescriptor* f, int index, bool pretty, bool hex) {
  const Reflection* r = m.GetReflection();
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL:
      return Json::Bool(rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f));
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* ev = rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f);
      return Json::String(ev->name());
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == FieldDescriptor::TYPE_STRING) return Json::String(std::move(s));
      if (OptsOf(f).conv() == "unix_name") return Json::String(pretty::QuotedPrintable(s));
      return Json::String(pretty::Base64Lines(s));
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return Json::Double(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return Json::Double(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToJsonImpl(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f),
                               pretty, hex || OptsOf(f).hex());
    default:
      return IntegerToJson(f, IntegerAt(m, f, index), pretty, hex);
  }
}

Json MessageToJsonImpl(const Message& m, bool pretty, bool hex) {
  Json obj = Json::Object();
  std::vector<const FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);  // set fields, by number
  for (const FieldDescriptor* f : fields) {
    if (!f->is_repeated()) {
      obj.Set(f->name(), ScalarToJson(m, f, 0, pretty, hex));
      continue;
    }
    int n = m.GetReflection()->FieldSize(m, f);
    if (pretty && OptsOf(f).ipadd() && IsInteger(f)) {
      // crit prints the words of one address as a one-element list.
      std::vector<uint32_t> words;
      for (int i = 0; i < n; ++i) words.push_back(static_cast<uint32_t>(IntegerAt(m, f, i)));
      auto ip = pretty::FormatIp(words);
      if (ip.ok()) {
        Json arr = Json::Array();
        arr.Push(Json::String(*ip));
        obj.Set(f->name(), std::move(arr));
        continue;
      }
    }
    Json arr = Json::Array();
    for (int i = 0; i < n; ++i) arr.Push(ScalarToJson(m, f, i, pretty, hex));
    obj.Set(f->name(), std::move(arr));
  }
  return obj;
}

// ---- JSON -> message ---------------------------------------------------------

absl::Status FieldError(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat("field %s: %s", path, what));
}

absl::StatusOr<uint64_t> JsonToInteger(const FieldDescriptor* f, const Json& v,
                                       const std::string& path) {
  if (v.is_number()) {
    if (IsSigned(f)) {
      auto i = v.AsInt64();
      if (!i.ok()) return FieldError(path, i.status().message());
      return static_cast<uint64_t>(*i);
    }
    auto u = v.AsUint64();
    if (!u.ok()) return FieldError(path, u.status().message());
    return *u;
  }
  if (!v.is_string()) return FieldError(path, "expected an integer");
  const criu::CRIU_Opts& o = OptsOf(f);
  const std::string& s = v.text();
  if (o.dev()) {
    auto d = pretty::ParseDev(s, o.odev());
    if (!d.ok()) return FieldError(path, d.status().message());
    return *d;
  }
  if (o.has_flags()) {
    auto fl = pretty::ParseFlags(o.flags(), s);
    if (!fl.ok()) return FieldError(path, fl.status().message());
    return *fl;
  }
  if (o.has_dict()) {
    uint64_t out;
    if (pretty::ParseDict(o.dict(), f->name(), s, out)) return out;
  }
  auto n = pretty::ParseIntAuto(s);
  if (!n.ok()) return FieldError(path, n.status().message());
  return static_cast<uint64_t>(*n);
}

// Checks that v fits the field's width (after sign handling) before storing.
absl::Status CheckRange(const FieldDescriptor* f, uint64_t v, const std::string& path) {
  bool ok = true;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int64_t s = static_cast<int64_t>(v);
      ok = s >= INT32_MIN && s <= INT32_MAX;
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32:
      ok = v <= UINT32_MAX;
      break;
    default:
      break;
  }
  return ok ? absl::OkStatus() : FieldError(path, "value out of range for the field's type");
}

absl::Status SetScalar(Message& m, const FieldDescriptor* f, const Json& v,
                       const std::string& path) {
  const Reflection* r = m.GetReflection();
  bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool b;
      if (v.is_bool()) {
        b = v.bool_value();
      } else if (v.is_number()) {
        b = v.text() != "0";
      } else {
        return FieldError(path, "expected true or false");
      }
      rep ? r->AddBool(&m, f, b) : r->SetBool(&m, f, b);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const google::protobuf::EnumValueDescriptor* ev = nullptr;
      if (v.is_string()) {
        ev = f->enum_type()->FindValueByName(v.text());
      } else if (v.is_number()) {
        auto n = v.AsInt64();
        if (n.ok()) ev = f->enum_type()->FindValueByNumber(static_cast<int>(*n));
      }
      if (ev == nullptr) {
        return FieldError(path, absl::StrFormat("'%s' is not a value of enum %s", v.text(),
                                                f->enum_type()->name()));
      }
      rep ? r->AddEnum(&m, f, ev) : r->SetEnum(&m, f, ev);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (!v.is_string()) return FieldError(path, "expected a string");
      std::string s;
      if (f->type() == FieldDescriptor::TYPE_STRING) {
        s = v.text();
      } else if (OptsOf(f).conv() == "unix_name") {
        s = pretty::QuotedPrintableDecode(v.text());
      } else {
        auto b = pretty::Base64Decode(v.text());
        if (!b.ok()) return FieldError(path, b.status().message());
        s = std::move(*b);
      }
      rep ? r->AddString(&m, f, std::move(s)) : r->SetString(&m, f, std::move(s));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      auto d = v.AsDouble();
      if (!d.ok()) return FieldError(path, d.status().message());
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        rep ? r->AddDouble(&m, f, *d) : r->SetDouble(&m, f, *d);
      } else {
        rep ? r->AddFloat(&m, f, static_cast<float>(*d))
            : r->SetFloat(&m, f, static_cast<float>(*d));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      // Messages are filled by FillMessage, which keeps the field path.
      return FieldError(path, "internal: message handled as a scalar");
    default: {
      auto n = JsonToInteger(f, v, path);
      if (!n.ok()) return n.status();
      if (auto s = CheckRange(f, *n, path); !s.ok()) return s;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          rep ? r->AddInt32(&m, f, static_cast<int32_t>(*n))
              : r->SetInt32(&m, f, static_cast<int32_t>(*n));
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          rep ? r->AddInt64(&m, f, static_cast<int64_t>(*n))
              : r->SetInt64(&m, f, static_cast<int64_t>(*n));
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          rep ? r->AddUInt32(&m, f, static_cast<uint32_t>(*n))
              : r->SetUInt32(&m, f, static_cast<uint32_t>(*n));
          break;
        default:
          rep ? r->AddUInt64(&m, f, *n) : r->SetUInt64(&m, f, *n);
          break;
      }
      return absl::OkStatus();
    }
  }
}

absl::Status FillMessage(const Json& json, Message& m, const std::string& prefix) {
  const Descriptor* d = m.GetDescriptor();
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: expected a JSON object for %s", prefix.empty() ? d->name() : prefix, d->name()));
  }
  for (const auto& [key, value] : json.members()) {
    std::string path = prefix.empty() ? d->name() + "." + key : prefix + "." + key;
    const FieldDescriptor* f = d->FindFieldByName(key);
    if (f == nullptr) return FieldError(path, "no such field in " + d->name());
    if (f->is_repeated()) {
      if (!value.is_array()) return FieldError(path, "expected a list");
      if (OptsOf(f).ipadd() && !value.items().empty() && value.items()[0].is_string()) {
        auto words = pretty::ParseIp(value.items()[0].text());
        if (!words.ok()) return FieldError(path, words.status().message());
        for (uint32_t w : *words) m.GetReflection()->AddUInt32(&m, f, w);
        continue;
      }
      for (size_t i = 0; i < value.items().size(); ++i) {
        std::string ipath = absl::StrFormat("%s[%d]", path, i);
        const Json& item = value.items()[i];
        absl::Status s =
            f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
                ? (item.is_object()
                       ? FillMessage(item, *m.GetReflection()->AddMessage(&m, f), ipath)
                       : FieldError(ipath, "expected an object"))
                : SetScalar(m, f, item, ipath);
        if (!s.ok()) return s;
      }
      continue;
    }
    absl::Status s;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      s = value.is_object() ? FillMessage(value, *m.GetReflection()->MutableMessage(&m, f), path)
                            : FieldError(path, "expected an object");
    } else {
      s = SetScalar(m, f, value, path);
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

Json MessageToJson(const Message& msg, bool pretty) {
  return MessageToJsonImpl(msg, pretty, false);
}

absl::Status JsonToMessage(const Json& json, Message& msg) {
  msg.Clear();
  return FillMessage(json, msg, "");
}

}  // namespace crpp::images
