// Whole images to and from crit's JSON document
//   {"magic": "CORE", "entries": [ {...}, ... ]}
// including the special shapes: pagemap's head entry, and the raw payloads
// that follow entries of pipe data, socket queues, TCP streams, ghost files,
// SysV IPC objects and BPF maps (the "extra" key).
#ifndef CRPP_CORE_IMAGES_CRIT_CODEC_H_
#define CRPP_CORE_IMAGES_CRIT_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/images/image_io.h"
#include "core/json.h"

namespace crpp::images {

struct DecodeOptions {
  bool pretty = false;
  // Replace payloads by "... <SIZE>" instead of their contents (crit show --nopl).
  bool no_payload = false;
};

absl::StatusOr<Json> DecodeImage(ImageReader& reader, const DecodeOptions& options);

// Writes the image `doc` describes to fd (which the caller owns); `name` is
// used in errors.
absl::Status EncodeImage(const Json& doc, int fd, const std::string& name);

// An empty message of the protobuf type `type` (a name from the magic table).
absl::StatusOr<std::unique_ptr<google::protobuf::Message>> NewEntry(std::string_view type);

}  // namespace crpp::images

#endif  // CRPP_CORE_IMAGES_CRIT_CODEC_H_
