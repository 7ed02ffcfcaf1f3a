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
#include "core/images/magic.h"

namespace crpp::resources::pipes_internal {

// The bytes buffered in the pipe that `pid`'s `fd` is an end of, left where
// they are: a read end of our own (through /proc, which works for either end)
// and tee(2) into a pipe of ours as big as that one. `size` gets the pipe's
// capacity.
absl::StatusOr<std::string> PeekPipe(pid_t pid, int fd, uint32_t& size);

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
