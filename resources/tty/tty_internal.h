// What the dump and restore halves of the tty plugin share: CRIU's numbering
// of tty-info entries, the conversion of termios to and from the image, the
// image kinds, and an fd that closes itself.
#ifndef CRPP_RESOURCES_TTY_TTY_INTERNAL_H_
#define CRPP_RESOURCES_TTY_TTY_INTERNAL_H_

#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "core/images/magic.h"
#include "tty.pb.h"

namespace crpp::resources::tty {

// The control characters the kernel's termios has (and CRIU writes).
inline constexpr int kTermiosNcc = 19;

// tty-info.img ids, as CRIU numbers them: 2N for the slave of pty N, 2N + 1
// for its master. tty-data.img entries carry the id of the end the bytes
// are read from.
inline uint32_t InfoId(unsigned index, bool master) { return index * 2 + (master ? 1u : 0u); }

// tty-info ids of external terminals (--external tty[...]): above those of
// ptys 0..1000, even, as CRIU numbers its terminals that have no index.
inline uint32_t ExternalInfoId(unsigned n) { return 2 * (1008 + n); }

const images::ImageKind& TtyInfoImage();
const images::ImageKind& TtyDataImage();

void ToEntry(const termios& t, criu::termios_entry& e);
void ToEntry(const winsize& w, criu::winsize_entry& e);
winsize FromEntry(const criu::winsize_entry& e);
// DataLossError naming WHAT when the entry has too few control characters.
absl::Status FromEntry(const criu::termios_entry& e, const std::string& what, termios& t);

// An InternalError "WHAT: STEP: strerror(errno)".
absl::Status Errno(const std::string& what, const std::string& step);

// Owns an fd; closes it when it goes.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() { Reset(); }
  OwnedFd(OwnedFd&& o) noexcept : fd_(o.Release()) {}
  OwnedFd& operator=(OwnedFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.Release();
    }
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace crpp::resources::tty

#endif  // CRPP_RESOURCES_TTY_TTY_INTERNAL_H_
