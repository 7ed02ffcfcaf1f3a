#include "tests/images/random_message.h"

#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "opts.pb.h"

namespace crpp::testing {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

namespace {

// Integers of every magnitude, including the edges of each width.
uint64_t RandomBits(std::mt19937_64& rng) {
  switch (rng() % 5) {
    case 0:
      return rng() % 16;
    case 1:
      return rng() % 100000;
    case 2:
      return ~0ull - rng() % 3;
    case 3:
      return rng() & 0xffffffffu;
    default:
      return rng();
  }
}

std::string RandomString(std::mt19937_64& rng, bool binary) {
  std::string s(rng() % 40, ' ');
  for (char& c : s) c = binary ? static_cast<char>(rng()) : static_cast<char>(' ' + rng() % 95);
  return s;
}

void AddOne(Message& m, const FieldDescriptor* f, std::mt19937_64& rng, int depth) {
  const auto* r = m.GetReflection();
  bool rep = f->is_repeated();
  uint64_t v = RandomBits(rng);
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      rep ? r->AddInt32(&m, f, static_cast<int32_t>(v))
          : r->SetInt32(&m, f, static_cast<int32_t>(v));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      rep ? r->AddInt64(&m, f, static_cast<int64_t>(v))
          : r->SetInt64(&m, f, static_cast<int64_t>(v));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      rep ? r->AddUInt32(&m, f, static_cast<uint32_t>(v))
          : r->SetUInt32(&m, f, static_cast<uint32_t>(v));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      rep ? r->AddUInt64(&m, f, v) : r->SetUInt64(&m, f, v);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      rep ? r->AddBool(&m, f, v & 1) : r->SetBool(&m, f, v & 1);
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type();
      const auto* ev = e->value(static_cast<int>(rng() % e->value_count()));
      rep ? r->AddEnum(&m, f, ev) : r->SetEnum(&m, f, ev);
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string s = RandomString(rng, f->type() == FieldDescriptor::TYPE_BYTES);
      rep ? r->AddString(&m, f, s) : r->SetString(&m, f, s);
      break;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
      rep ? r->AddDouble(&m, f, static_cast<double>(v))
          : r->SetDouble(&m, f, static_cast<double>(v));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      rep ? r->AddFloat(&m, f, static_cast<float>(v % 1000))
          : r->SetFloat(&m, f, static_cast<float>(v % 1000));
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      FillRandom(rep ? *r->AddMessage(&m, f) : *r->MutableMessage(&m, f), rng, depth - 1);
      break;
  }
}

}  // namespace

void FillRandom(Message& msg, std::mt19937_64& rng, int depth) {
  const auto* d = msg.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    // Recursive messages (apparmor namespaces) stop at the depth limit.
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && depth <= 0 && !f->is_required()) {
      continue;
    }
    if (!f->is_repeated()) {
      AddOne(msg, f, rng, depth);
      continue;
    }
    int n = 1 + static_cast<int>(rng() % 3);
    if (f->options().GetExtension(criu::criu).ipadd()) n = rng() % 2 ? 1 : 4;
    for (int k = 0; k < n; ++k) AddOne(msg, f, rng, depth);
  }
}

}  // namespace crpp::testing
