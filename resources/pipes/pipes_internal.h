// What anonymous pipes and named FIFOs share: reading a pipe's buffer at
// dump without consuming it, and refilling it at restore.
#ifndef CRPP_RESOURCES_PIPES_PIPES_INTERNAL_H_
#define CRPP_RESOURCES_PIPES_PIPES_INTERNAL_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"

namespace crpp::resources::pipes_internal {

// Writes the buffer of the pipe that `pid`'s `fd` is an end of to `image`
// (pipes-data.img or fifo-data.img) as pipe `pipe_id`: one pipe_data_entry
// with the bytes as its payload. The bytes stay in the pipe (pipes.cc).
struct Buffered {
  uint32_t size = 0;  // the pipe's capacity
  size_t bytes = 0;   // how many were in it
};
absl::StatusOr<Buffered> DumpBuffer(images::ImageWriter& image, pid_t pid, int fd,
                                    uint32_t pipe_id);

struct PipeData {
  uint32_t size = 0;
  std::string bytes;
};

// pipes-data.img or fifo-data.img (`kind`), by pipe id; empty when the image
// does not exist.
absl::StatusOr<std::map<uint32_t, PipeData>> ReadPipeData(const std::string& path,
                                                          const images::ImageKind& kind);

// Sets the capacity of the pipe `fd` writes to and writes the bytes back.
absl::Status Refill(int fd, uint32_t id, const PipeData& d);

}  // namespace crpp::resources::pipes_internal

#endif  // CRPP_RESOURCES_PIPES_PIPES_INTERNAL_H_
