// Protobuf messages to and from crit's JSON.
//
// The rules are crit's (CRIU's pycriu pb2dict): keys are the set fields in
// field-number order; enums by name; bytes as base64 with Python's line
// breaks; and in pretty mode the (criu) field options turn integers into hex
// strings, flag lists, "major:minor" devices, dictionary names and IP
// addresses. hex on a message field applies to every integer inside it.
#ifndef CRPP_CORE_IMAGES_PB_JSON_H_
#define CRPP_CORE_IMAGES_PB_JSON_H_

#include "absl/status/status.h"
#include "core/json.h"
#include "google/protobuf/message.h"

namespace crpp::images {

Json MessageToJson(const google::protobuf::Message& msg, bool pretty);

// Fills `msg` from a JSON object in either form (plain or pretty). Unknown
// keys, wrong types and bad values are errors naming the field's path.
absl::Status JsonToMessage(const Json& json, google::protobuf::Message& msg);

}  // namespace crpp::images

#endif  // CRPP_CORE_IMAGES_PB_JSON_H_
