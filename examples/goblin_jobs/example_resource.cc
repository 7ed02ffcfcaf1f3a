#include "examples/goblin_jobs/example_resource.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"

namespace goblin_jobs {
namespace {

absl::Status Note(const std::string& images_dir, const std::string& line) {
  const std::string path = NotesPath(images_dir);
  // O_CLOEXEC: in a restored process the fd must not outlive the hook.
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return absl::PermissionDeniedError(path + ": " + strerror(errno));
  const std::string text = line + "\n";
  ssize_t n = write(fd, text.data(), text.size());
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) return absl::InternalError(path + ": short write");
  return absl::OkStatus();
}

}  // namespace

std::string NotesPath(const std::string& images_dir) {
  return images_dir + "/example-resource.txt";
}

absl::Status ExampleResource::Dump(crpp::DumpContext& ctx) {
  return Note(ctx.images_dir, absl::StrFormat("dumped %d", ctx.pid));
}

absl::Status ExampleResource::Restore(crpp::RestoreContext& ctx) {
  return Note(ctx.images_dir, absl::StrFormat("restored %d", ctx.pid));
}

}  // namespace goblin_jobs
