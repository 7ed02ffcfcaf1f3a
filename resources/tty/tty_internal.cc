#include "resources/tty/tty_internal.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace crpp::resources::tty {

const images::ImageKind& TtyInfoImage() { return *images::FindKindByName("TTY_INFO"); }
const images::ImageKind& TtyDataImage() { return *images::FindKindByName("TTY_DATA"); }

void ToEntry(const termios& t, criu::termios_entry& e) {
  e.set_c_iflag(t.c_iflag);
  e.set_c_oflag(t.c_oflag);
  e.set_c_cflag(t.c_cflag);
  e.set_c_lflag(t.c_lflag);
  e.set_c_line(t.c_line);
  // The speeds are in c_cflag; CRIU leaves these two at 0 as well.
  e.set_c_ispeed(0);
  e.set_c_ospeed(0);
  e.clear_c_cc();
  for (int i = 0; i < kTermiosNcc; ++i) e.add_c_cc(t.c_cc[i]);
}

absl::Status FromEntry(const criu::termios_entry& e, const std::string& what, termios& t) {
  if (e.c_cc_size() < kTermiosNcc) {
    return absl::DataLossError(absl::StrFormat("%s: termios with %d control characters, not %d",
                                               what, e.c_cc_size(), kTermiosNcc));
  }
  memset(&t, 0, sizeof t);
  t.c_iflag = e.c_iflag();
  t.c_oflag = e.c_oflag();
  t.c_cflag = e.c_cflag();
  t.c_lflag = e.c_lflag();
  t.c_line = static_cast<cc_t>(e.c_line());
  for (int i = 0; i < kTermiosNcc; ++i) t.c_cc[i] = static_cast<cc_t>(e.c_cc(i));
  return absl::OkStatus();
}

void ToEntry(const winsize& w, criu::winsize_entry& e) {
  e.set_ws_row(w.ws_row);
  e.set_ws_col(w.ws_col);
  e.set_ws_xpixel(w.ws_xpixel);
  e.set_ws_ypixel(w.ws_ypixel);
}

winsize FromEntry(const criu::winsize_entry& e) {
  winsize w{};
  w.ws_row = static_cast<unsigned short>(e.ws_row());
  w.ws_col = static_cast<unsigned short>(e.ws_col());
  w.ws_xpixel = static_cast<unsigned short>(e.ws_xpixel());
  w.ws_ypixel = static_cast<unsigned short>(e.ws_ypixel());
  return w;
}

absl::Status Errno(const std::string& what, const std::string& step) {
  return absl::InternalError(absl::StrFormat("%s: %s: %s", what, step, strerror(errno)));
}

}  // namespace crpp::resources::tty
