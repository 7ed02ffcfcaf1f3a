#include "core/images/crit_codec.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "core/images/pb_json.h"
#include "core/images/pretty_tables.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"

namespace crpp::images {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

uint64_t RoundUp(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

// Reads an unsigned integer field by name; payload sizes live in such fields.
absl::StatusOr<uint64_t> SizeField(const Message& m, std::string_view name) {
  const FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(std::string(name));
  if (f == nullptr || f->is_repeated()) {
    return absl::InternalError(absl::StrFormat("%s has no field %s", m.GetTypeName(), name));
  }
  const auto* r = m.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_UINT32:
      return r->GetUInt32(m, f);
    case FieldDescriptor::CPPTYPE_UINT64:
      return r->GetUInt64(m, f);
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(m, f) ? 1 : 0;
    default:
      return absl::InternalError(absl::StrFormat("%s.%s is not a size", m.GetTypeName(), name));
  }
}

// Python's human-readable size as crit prints it for --nopl.
std::string HumanSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"", "K", "M", "G", "T", "P", "E", "Z"};
  double num = static_cast<double>(bytes);
  for (const char* unit : kUnits) {
    if (num < 1024) {
      if (num == static_cast<double>(static_cast<uint64_t>(num))) {
        return absl::StrFormat("%d%sB", static_cast<uint64_t>(num), unit);
      }
      return absl::StrFormat("%.1f%sB", num, unit);
    }
    num /= 1024.0;
  }
  return absl::StrFormat("%.1fYB", num);
}

Json NoPayload(uint64_t size) { return Json::String("... <" + HumanSize(size) + ">"); }

// Reads the payload after entry `m` of an image of `kind`; sets "extra".
absl::Status DecodePayload(ImageReader& r, const ImageKind& kind, const Message& m, Json& entry,
                           const DecodeOptions& o) {
  std::string data;
  auto read_b64 = [&](uint64_t size) -> absl::StatusOr<Json> {
    if (o.no_payload) {
      if (auto s = r.SkipPayload(size); !s.ok()) return s;
      return NoPayload(size);
    }
    if (auto s = r.ReadPayload(size, data); !s.ok()) return s;
    return Json::String(pretty::Base64Lines(data));
  };
  auto field = [&](std::string_view name) { return SizeField(m, name); };
  switch (kind.payload) {
    case Payload::kNone:
      return absl::OkStatus();
    case Payload::kPipeData:
    case Payload::kSkQueue:
    case Payload::kBpfMapData: {
      absl::StatusOr<uint64_t> size;
      if (kind.payload == Payload::kPipeData) {
        size = field("bytes");
      } else if (kind.payload == Payload::kSkQueue) {
        size = field("length");
      } else {
        auto k = field("keys_bytes");
        auto v = field("values_bytes");
        if (!k.ok()) return k.status();
        if (!v.ok()) return v.status();
        size = *k + *v;
      }
      if (!size.ok()) return size.status();
      auto extra = read_b64(*size);
      if (!extra.ok()) return extra.status();
      entry.Set("extra", std::move(*extra));
      return absl::OkStatus();
    }
    case Payload::kTcpStream: {
      auto in = field("inq_len");
      auto out = field("outq_len");
      if (!in.ok()) return in.status();
      if (!out.ok()) return out.status();
      if (o.no_payload) {
        if (auto s = r.SkipPayload(*in + *out); !s.ok()) return s;
        entry.Set("extra", NoPayload(*in + *out));
        return absl::OkStatus();
      }
      Json queues = Json::Object();
      auto inq = read_b64(*in);
      if (!inq.ok()) return inq.status();
      queues.Set("inq", std::move(*inq));
      auto outq = read_b64(*out);
      if (!outq.ok()) return outq.status();
      queues.Set("outq", std::move(*outq));
      entry.Set("extra", std::move(queues));
      return absl::OkStatus();
    }
    case Payload::kIpcShm: {
      auto size = field("size");
      if (!size.ok()) return size.status();
      auto extra = read_b64(*size);
      if (!extra.ok()) return extra.status();
      if (auto s = r.SkipPayload(RoundUp(*size, 4) - *size); !s.ok()) return s;
      entry.Set("extra", std::move(*extra));
      return absl::OkStatus();
    }
    case Payload::kIpcSem: {
      auto n = field("nsems");
      if (!n.ok()) return n.status();
      uint64_t bytes = *n * 2;
      if (o.no_payload) {
        if (auto s = r.SkipPayload(RoundUp(bytes, 8)); !s.ok()) return s;
        entry.Set("extra", NoPayload(bytes));
        return absl::OkStatus();
      }
      if (auto s = r.ReadPayload(RoundUp(bytes, 8), data); !s.ok()) return s;
      Json values = Json::Array();
      for (uint64_t i = 0; i < *n; ++i) {
        uint16_t v;
        memcpy(&v, data.data() + 2 * i, 2);
        values.Push(Json::Uint(v));
      }
      entry.Set("extra", std::move(values));
      return absl::OkStatus();
    }
    case Payload::kIpcMsg: {
      auto qnum = field("qnum");
      if (!qnum.ok()) return qnum.status();
      Json list = Json::Array();
      uint64_t total = 0;
      for (uint64_t i = 0; i < *qnum; ++i) {
        auto msg = NewEntry("ipc_msg");
        if (!msg.ok()) return msg.status();
        auto more = r.Next(**msg);
        if (!more.ok()) return more.status();
        if (!*more)
          return r.Error(absl::StrFormat("expected %d queued messages, found %d", *qnum, i));
        auto msize = SizeField(**msg, "msize");
        if (!msize.ok()) return msize.status();
        total += (*msg)->ByteSizeLong() + *msize;
        if (o.no_payload) {
          if (auto s = r.SkipPayload(RoundUp(*msize, 8)); !s.ok()) return s;
          continue;
        }
        if (auto s = r.ReadPayload(RoundUp(*msize, 8), data); !s.ok()) return s;
        list.Push(MessageToJson(**msg, /*pretty=*/false));
        list.Push(Json::String(pretty::Base64Lines(std::string_view(data).substr(0, *msize))));
      }
      entry.Set("extra", o.no_payload ? NoPayload(total) : std::move(list));
      return absl::OkStatus();
    }
    case Payload::kGhostFile:
      return absl::OkStatus();  // handled by DecodeGhost: its layout is not per entry
  }
  return absl::OkStatus();
}

absl::Status DecodeGhost(ImageReader& r, const DecodeOptions& o, Json& entries) {
  auto ghost = NewEntry("ghost_file_entry");
  if (!ghost.ok()) return ghost.status();
  auto more = r.Next(**ghost);
  if (!more.ok()) return more.status();
  if (!*more) return absl::OkStatus();
  Json head = MessageToJson(**ghost, o.pretty);
  auto chunks = SizeField(**ghost, "chunks");
  bool chunked = chunks.ok() && *chunks != 0;
  if (!chunked) {
    std::string data;
    if (!o.no_payload) {
      if (auto s = r.ReadToEnd(data); !s.ok()) return s;
      head.Set("extra", Json::String(pretty::Base64Lines(data)));
    } else if (auto s = r.ReadToEnd(data); !s.ok()) {
      return s;
    }
    entries.Push(std::move(head));
    return absl::OkStatus();
  }
  entries.Push(std::move(head));
  for (;;) {
    auto chunk = NewEntry("ghost_chunk_entry");
    if (!chunk.ok()) return chunk.status();
    auto next = r.Next(**chunk);
    if (!next.ok()) return next.status();
    if (!*next) return absl::OkStatus();
    Json c = MessageToJson(**chunk, o.pretty);
    auto len = SizeField(**chunk, "len");
    if (!len.ok()) return len.status();
    std::string data;
    if (o.no_payload) {
      if (auto s = r.SkipPayload(*len); !s.ok()) return s;
    } else {
      if (auto s = r.ReadPayload(*len, data); !s.ok()) return s;
      c.Set("extra", Json::String(pretty::Base64Lines(data)));
    }
    entries.Push(std::move(c));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Message>> NewEntry(std::string_view type) {
  const auto* desc = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
      "criu." + std::string(type));
  if (desc == nullptr) {
    return absl::InternalError(absl::StrFormat("no protobuf message criu.%s is linked in", type));
  }
  const Message* proto = google::protobuf::MessageFactory::generated_factory()->GetPrototype(desc);
  return std::unique_ptr<Message>(proto->New());
}

absl::StatusOr<Json> DecodeImage(ImageReader& r, const DecodeOptions& o) {
  const ImageKind& kind = r.kind();
  Json doc = Json::Object();
  doc.Set("magic", Json::String(std::string(kind.name)));
  Json entries = Json::Array();
  if (kind.payload == Payload::kGhostFile) {
    if (auto s = DecodeGhost(r, o, entries); !s.ok()) return s;
  } else {
    bool first = true;
    for (;;) {
      auto msg = NewEntry(first && !kind.head_type.empty() ? kind.head_type : kind.entry_type);
      if (!msg.ok()) return msg.status();
      auto more = r.Next(**msg);
      if (!more.ok()) return more.status();
      if (!*more) break;
      Json entry = MessageToJson(**msg, o.pretty);
      if (auto s = DecodePayload(r, kind, **msg, entry, o); !s.ok()) return s;
      entries.Push(std::move(entry));
      first = false;
    }
  }
  doc.Set("entries", std::move(entries));
  return doc;
}

namespace {

absl::StatusOr<std::string> B64Extra(const Json* extra, std::string_view what) {
  if (extra == nullptr) return std::string();
  if (!extra->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: \"extra\" must be a base64 string", what));
  }
  return pretty::Base64Decode(extra->text());
}

absl::Status ExpectSize(std::string_view what, uint64_t have, uint64_t want) {
  if (have == want) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: \"extra\" holds %d bytes but the entry says %d", what, have, want));
}

absl::Status EncodePayload(ImageWriter& w, const ImageKind& kind, const Message& m,
                           const Json* extra, const std::string& what) {
  auto pad_to = [&](uint64_t have, uint64_t to) {
    return w.WritePayload(std::string(RoundUp(have, to) - have, '\0'));
  };
  switch (kind.payload) {
    case Payload::kNone:
      if (extra != nullptr)
        return absl::InvalidArgumentError(what + ": this image has no \"extra\"");
      return absl::OkStatus();
    case Payload::kPipeData:
    case Payload::kSkQueue:
    case Payload::kBpfMapData:
    case Payload::kIpcShm: {
      auto data = B64Extra(extra, what);
      if (!data.ok()) return data.status();
      uint64_t want = 0;
      if (kind.payload == Payload::kPipeData) {
        want = *SizeField(m, "bytes");
      } else if (kind.payload == Payload::kSkQueue) {
        want = *SizeField(m, "length");
      } else if (kind.payload == Payload::kBpfMapData) {
        want = *SizeField(m, "keys_bytes") + *SizeField(m, "values_bytes");
      } else {
        want = *SizeField(m, "size");
      }
      if (auto s = ExpectSize(what, data->size(), want); !s.ok()) return s;
      if (auto s = w.WritePayload(*data); !s.ok()) return s;
      return kind.payload == Payload::kIpcShm ? pad_to(data->size(), 4) : absl::OkStatus();
    }
    case Payload::kTcpStream: {
      if (extra == nullptr || !extra->is_object()) {
        return absl::InvalidArgumentError(what +
                                          ": \"extra\" must be {\"inq\": ..., \"outq\": ...}");
      }
      auto in = B64Extra(extra->Find("inq"), what + ".inq");
      auto out = B64Extra(extra->Find("outq"), what + ".outq");
      if (!in.ok()) return in.status();
      if (!out.ok()) return out.status();
      if (auto s = ExpectSize(what + ".inq", in->size(), *SizeField(m, "inq_len")); !s.ok())
        return s;
      if (auto s = ExpectSize(what + ".outq", out->size(), *SizeField(m, "outq_len")); !s.ok()) {
        return s;
      }
      if (auto s = w.WritePayload(*in); !s.ok()) return s;
      return w.WritePayload(*out);
    }
    case Payload::kIpcSem: {
      uint64_t n = *SizeField(m, "nsems");
      if (extra == nullptr || !extra->is_array() || extra->items().size() != n) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: \"extra\" must list %d semaphore values", what, n));
      }
      std::string bytes;
      for (const Json& v : extra->items()) {
        auto u = v.AsUint64();
        if (!u.ok() || *u > 0xffff) {
          return absl::InvalidArgumentError(what + ": semaphore value out of range");
        }
        uint16_t s = static_cast<uint16_t>(*u);
        bytes.append(reinterpret_cast<const char*>(&s), 2);
      }
      if (auto s = w.WritePayload(bytes); !s.ok()) return s;
      return pad_to(bytes.size(), 8);
    }
    case Payload::kIpcMsg: {
      uint64_t n = *SizeField(m, "qnum");
      if (extra == nullptr || !extra->is_array() || extra->items().size() != 2 * n) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: \"extra\" must alternate %d message headers and their data", what, n));
      }
      for (uint64_t i = 0; i < n; ++i) {
        auto msg = NewEntry("ipc_msg");
        if (!msg.ok()) return msg.status();
        if (auto s = JsonToMessage(extra->items()[2 * i], **msg); !s.ok()) return s;
        auto data = B64Extra(&extra->items()[2 * i + 1], what);
        if (!data.ok()) return data.status();
        uint64_t msize = *SizeField(**msg, "msize");
        if (auto s = ExpectSize(what, data->size(), msize); !s.ok()) return s;
        if (auto s = w.Write(**msg); !s.ok()) return s;
        if (auto s = w.WritePayload(*data); !s.ok()) return s;
        if (auto s = pad_to(msize, 8); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    case Payload::kGhostFile: {
      auto data = B64Extra(extra, what);
      if (!data.ok()) return data.status();
      return w.WritePayload(*data);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EncodeImage(const Json& doc, int fd, const std::string& name) {
  if (!doc.is_object()) return absl::InvalidArgumentError(name + ": expected a JSON object");
  const Json* magic = doc.Find("magic");
  const Json* entries = doc.Find("entries");
  if (magic == nullptr || !magic->is_string()) {
    return absl::InvalidArgumentError(name + ": missing \"magic\" (e.g. \"CORE\")");
  }
  if (entries == nullptr || !entries->is_array()) {
    return absl::InvalidArgumentError(name + ": missing \"entries\" list");
  }
  const ImageKind* kind = FindKindByName(magic->text());
  if (kind == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: unknown image magic name \"%s\"", name, magic->text()));
  }
  auto w = ImageWriter::ToFd(fd, name, *kind);
  if (!w.ok()) return w.status();
  bool ghost_chunks = false;
  for (size_t i = 0; i < entries->items().size(); ++i) {
    const Json& item = entries->items()[i];
    std::string what = absl::StrFormat("%s: entry %d", name, i);
    if (!item.is_object()) return absl::InvalidArgumentError(what + ": expected an object");
    std::string_view type = kind->entry_type;
    if (i == 0 && !kind->head_type.empty()) type = kind->head_type;
    if (kind->payload == Payload::kGhostFile && i > 0) type = "ghost_chunk_entry";
    Json fields = Json::Object();
    const Json* extra = nullptr;
    for (const auto& [k, v] : item.members()) {
      if (k == "extra") {
        extra = &v;
      } else {
        fields.Set(k, v);
      }
    }
    auto msg = NewEntry(type);
    if (!msg.ok()) return msg.status();
    if (auto s = JsonToMessage(fields, **msg); !s.ok()) {
      return absl::Status(s.code(), what + ": " + std::string(s.message()));
    }
    if (auto s = (*w)->Write(**msg); !s.ok())
      return absl::Status(s.code(), what + ": " + std::string(s.message()));
    if (kind->payload == Payload::kGhostFile && i == 0) {
      ghost_chunks = SizeField(**msg, "chunks").value_or(0) != 0;
      if (ghost_chunks) {
        if (extra != nullptr)
          return absl::InvalidArgumentError(what + ": chunked ghost file has its data in chunks");
        continue;
      }
    }
    if (auto s = EncodePayload(**w, *kind, **msg, extra, what); !s.ok()) return s;
  }
  return (*w)->Close();
}

}  // namespace crpp::images
