#include "core/log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace crpp::log {
namespace {

struct Sink {
  std::mutex mu;
  int verbosity = kDefaultVerbosity;
  int fd = STDERR_FILENO;
  bool file = false;  // fd is a log file (not the terminal's stderr or a copy of it)
  std::string path;
  timespec start{};
};

Sink& TheSink() {
  static Sink* sink = [] {
    auto* s = new Sink;
    clock_gettime(CLOCK_MONOTONIC, &s->start);
    return s;
  }();
  return *sink;
}

constexpr std::string_view Prefix(Level level) {
  switch (level) {
    case Level::kError:
      return "Error: ";
    case Level::kWarn:
      return "Warn: ";
    default:
      return "";
  }
}

}  // namespace

void SetVerbosity(int level) { TheSink().verbosity = std::clamp(level, 0, 4); }
int Verbosity() { return TheSink().verbosity; }

absl::Status ToFile(const std::string& path, bool append) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot open log file %s: %s", path, strerror(errno)));
  }
  Sink& s = TheSink();
  std::lock_guard lock(s.mu);
  if (s.fd != STDERR_FILENO) close(s.fd);
  s.fd = fd;
  s.file = true;
  s.path = path;
  return absl::OkStatus();
}

void ToStderr(bool close_fd) {
  Sink& s = TheSink();
  std::lock_guard lock(s.mu);
  if (s.fd != STDERR_FILENO && close_fd) close(s.fd);
  s.fd = STDERR_FILENO;
  s.file = false;
  s.path.clear();
}

int MoveFdAbove(int min_fd) {
  Sink& s = TheSink();
  std::lock_guard lock(s.mu);
  if (s.fd == STDERR_FILENO) {
    // stderr itself will be replaced by the task's fd 2: keep a private copy.
    int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, min_fd);
    if (fd >= 0) s.fd = fd;
    return fd;
  }
  if (s.fd >= min_fd) return s.fd;
  int fd = fcntl(s.fd, F_DUPFD_CLOEXEC, min_fd);
  if (fd < 0) return -1;
  close(s.fd);
  s.fd = fd;
  return fd;
}

bool LogsToFile() { return TheSink().file; }
const std::string& LogPath() { return TheSink().path; }

bool Enabled(Level level) {
  // Errors always reach a log file, whatever the verbosity: it is where a
  // user looks after a failure.
  return level == Level::kMsg || static_cast<int>(level) <= TheSink().verbosity ||
         (level == Level::kError && LogsToFile());
}

void Write(Level level, std::string_view message) {
  Sink& s = TheSink();
  std::string line;
  if (s.verbosity >= static_cast<int>(Level::kInfo)) {
    // Same shape as criu's "(00.012345)" prefix: seconds since start.
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ns = (now.tv_sec - s.start.tv_sec) * 1000000000L + (now.tv_nsec - s.start.tv_nsec);
    line = absl::StrFormat("(%02ld.%06ld) ", ns / 1000000000L, (ns % 1000000000L) / 1000);
  }
  line.append(Prefix(level));
  line.append(message);
  if (line.empty() || line.back() != '\n') line.push_back('\n');
  std::lock_guard lock(s.mu);
  // A short write to a log is not worth failing a checkpoint over.
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(s.fd, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

absl::Status Failed(absl::Status status) {
  if (!status.ok()) Error("%s", status.ToString());
  return status;
}

}  // namespace crpp::log
