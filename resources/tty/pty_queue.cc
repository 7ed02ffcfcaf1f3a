#include "resources/tty/pty_queue.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "core/log.h"
#include "resources/tty/tty_internal.h"

namespace crpp::resources::tty {
namespace {

// ioctl(TCGETS) fills the kernel's struct termios, the first 36 bytes of
// glibc's (which has more control characters and the speeds after them).
constexpr size_t kKernelTermiosSize = 4 * sizeof(tcflag_t) + 1 + 19;

bool AllZero(const termios& t) {
  const auto* p = reinterpret_cast<const unsigned char*>(&t);
  for (size_t i = 0; i < kKernelTermiosSize; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// A control character, or -1 when it is disabled (0 is _POSIX_VDISABLE: the
// kernel never treats a NUL byte as special).
int Cc(const termios& t, int index) { return t.c_cc[index] == 0 ? -1 : t.c_cc[index]; }

// The characters that end a canonical line under T.
bool EndsLine(unsigned char c, const termios& t) {
  return c == '\n' || c == Cc(t, VEOL) || ((t.c_lflag & IEXTEN) && c == Cc(t, VEOL2));
}

// Whether a byte of a line's text is one Refill would take for a line end or
// EOF (it came in quoted by VLNEXT, or under other termios).
bool SpecialInLine(std::string_view text, const termios& t) {
  for (unsigned char c : text) {
    if (EndsLine(c, t) || c == Cc(t, VEOF)) return true;
  }
  return false;
}

// The termios, locked termios and file flags of the two ends, put back by
// Restore (or the destructor, on an error path).
class Saved {
 public:
  Saved(int master, int slave) : master_(master), slave_(slave) {}
  ~Saved() {
    if (taken_ && !restored_) (void)Restore();
  }
  Saved(const Saved&) = delete;
  Saved& operator=(const Saved&) = delete;

  absl::Status Take(const std::string& what) {
    what_ = what;
    memset(&termios_, 0, sizeof termios_);
    memset(&locked_, 0, sizeof locked_);
    if (ioctl(slave_, TCGETS, &termios_) != 0) return Errno(what, "TCGETS");
    if (ioctl(slave_, TIOCGLCKTRMIOS, &locked_) != 0) return Errno(what, "TIOCGLCKTRMIOS");
    master_flags_ = fcntl(master_, F_GETFL);
    slave_flags_ = fcntl(slave_, F_GETFL);
    if (master_flags_ < 0 || slave_flags_ < 0) return Errno(what, "F_GETFL");
    taken_ = true;
    // Locked bits cannot be changed by TCSETS (it keeps them silently): free
    // them while we switch modes.
    if (!AllZero(locked_)) {
      termios none;
      memset(&none, 0, sizeof none);
      if (ioctl(slave_, TIOCSLCKTRMIOS, &none) != 0) return Errno(what, "TIOCSLCKTRMIOS");
    }
    return absl::OkStatus();
  }

  const termios& termios_value() const { return termios_; }

  absl::Status Restore() {
    restored_ = true;
    absl::Status first;
    auto note = [&](bool ok, const char* step) {
      if (!ok && first.ok()) first = Errno(what_, step);
    };
    note(ioctl(slave_, TCSETS, &termios_) == 0, "TCSETS");
    if (!AllZero(locked_)) note(ioctl(slave_, TIOCSLCKTRMIOS, &locked_) == 0, "TIOCSLCKTRMIOS");
    note(fcntl(master_, F_SETFL, master_flags_) == 0, "F_SETFL");
    note(fcntl(slave_, F_SETFL, slave_flags_) == 0, "F_SETFL");
    return first;
  }

 private:
  int master_, slave_;
  std::string what_;
  termios termios_, locked_;
  int master_flags_ = 0, slave_flags_ = 0;
  bool taken_ = false, restored_ = false;
};

// read() on a non-blocking FD: the bytes, 0 at "nothing more" (EAGAIN, or
// 0 from a non-canonical read with VMIN = VTIME = 0), -1 on an error.
ssize_t ReadSome(int fd, char* buf, size_t size) {
  for (;;) {
    ssize_t n = read(fd, buf, size);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    return -1;
  }
}

// The slave's input in canonical mode: one read returns one line (the
// buffer holds a whole one); a line that VEOF ended comes without it, and a
// VEOF at the start of a line reads as 0 bytes. The unfinished last line is
// readable only once ICANON is off.
absl::Status DrainCanonical(int slave, const termios& t, const std::string& what, Queued& out) {
  char buf[kMaxQueued + 2];
  for (size_t lines = 0;; ++lines) {
    if (lines > kMaxQueued + 1) {
      return absl::InternalError(what + ": the slave keeps returning lines; is it hung up?");
    }
    ssize_t n = read(slave, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return Errno(what, "reading the slave's queued lines");
    std::string_view line(buf, static_cast<size_t>(n));
    bool ended = !line.empty() && EndsLine(static_cast<unsigned char>(line.back()), t);
    std::string_view text = ended ? line.substr(0, line.size() - 1) : line;
    if (SpecialInLine(text, t) && out.not_exact.empty()) {
      out.not_exact = "a queued input line holds a line-end or EOF character in its text";
    }
    out.to_slave.append(line);
    if (!ended) {
      // Ended by VEOF: put it back as that character.
      if (Cc(t, VEOF) < 0 && out.not_exact.empty()) {
        out.not_exact = "a queued input line was ended by VEOF, which is now disabled";
      }
      out.to_slave.push_back(static_cast<char>(t.c_cc[VEOF]));
    }
  }
  termios raw = t;
  raw.c_lflag &= ~ICANON;
  raw.c_cc[VMIN] = 0;
  raw.c_cc[VTIME] = 0;
  if (ioctl(slave, TCSETS, &raw) != 0) return Errno(what, "TCSETS (non-canonical)");
  for (;;) {
    ssize_t n = ReadSome(slave, buf, sizeof buf);
    if (n < 0) return Errno(what, "reading the slave's unfinished line");
    if (n == 0) break;
    std::string_view part(buf, static_cast<size_t>(n));
    if (SpecialInLine(part, t) && out.not_exact.empty()) {
      out.not_exact = "the unfinished input line holds a line-end or EOF character";
    }
    out.to_slave.append(part);
  }
  return absl::OkStatus();
}

// Reads FD until nothing is left; in packet mode every read starts with a
// status byte: TIOCPKT_DATA (0) before data, or a control status alone.
absl::Status DrainRaw(int fd, bool packet, const std::string& what, const char* side,
                      std::string& out) {
  char buf[8192];
  for (;;) {
    ssize_t n = ReadSome(fd, buf, sizeof buf);
    if (n < 0) return Errno(what, side);
    if (n == 0) return absl::OkStatus();
    if (!packet) {
      out.append(buf, static_cast<size_t>(n));
    } else if (buf[0] == TIOCPKT_DATA) {
      out.append(buf + 1, static_cast<size_t>(n - 1));
    } else {
      // A flush/stop notification the master's reader had not read: it is
      // a notice of the moment, not data; it does not survive the dump.
      log::Info("tty: %s: drops the pending packet-mode status %#x", what,
                static_cast<unsigned char>(buf[0]));
    }
  }
}

// Hands BYTES to the line discipline of FD's end, one by one.
absl::Status Inject(int fd, std::string_view bytes, const std::string& what, const char* side) {
  for (char c : bytes) {
    if (ioctl(fd, TIOCSTI, &c) != 0) {
      return Errno(what, side);
    }
  }
  return absl::OkStatus();
}

// Bytes readable on FD now (TIOCINQ): in canonical mode those of complete
// lines, VEOF marks not counted.
absl::StatusOr<int> Readable(int fd, const std::string& what) {
  int n = 0;
  if (ioctl(fd, TIOCINQ, &n) != 0) return Errno(what, "TIOCINQ");
  return n;
}

// What TIOCINQ shows on the slave once ENCODED (see Queued::to_slave) is in.
size_t ExpectedCanonicalInq(std::string_view encoded, const termios& t) {
  size_t complete = 0, eofs = 0;
  for (size_t i = 0; i < encoded.size(); ++i) {
    auto c = static_cast<unsigned char>(encoded[i]);
    if (EndsLine(c, t)) {
      complete = i + 1;
    } else if (c == Cc(t, VEOF)) {
      complete = i + 1;
      ++eofs;
    }
  }
  return complete - eofs;
}

// Termios under which the slave's line discipline stores what it receives as
// it is: no input mapping, echo or signal characters, and in canonical mode
// only the characters that end lines (and VEOF, which the dump appended to a
// line it ended). ICANON and EXTPROC stay as they are (changing either would
// reset the line state), and IXON too (clearing it would restart output the
// tty's reader stopped): no character is START or STOP meanwhile.
termios Transparent(const termios& t) {
  termios x = t;
  x.c_iflag = t.c_iflag & IXON;
  bool eol2 = (t.c_lflag & IEXTEN) && t.c_cc[VEOL2] != 0;
  x.c_lflag = (t.c_lflag & (ICANON | EXTPROC)) | (eol2 ? IEXTEN : 0);
  for (int i = 0; i < NCCS; ++i) {
    if (i != VEOF && i != VEOL && i != VMIN && i != VTIME && !(eol2 && i == VEOL2)) {
      x.c_cc[i] = 0;
    }
  }
  return x;
}

// Writes what did not fit into a line discipline to the other end: the
// kernel keeps it in the tty's buffer, as it was before the dump, and hands
// it to the line discipline as the reader makes room.
absl::Status Overflow(int peer, std::string_view rest, const std::string& what) {
  int flags = fcntl(peer, F_GETFL);
  if (flags < 0 || fcntl(peer, F_SETFL, flags | O_NONBLOCK) != 0) return Errno(what, "F_SETFL");
  size_t done = 0;
  while (done < rest.size()) {
    ssize_t n = write(peer, rest.data() + done, rest.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  int e = errno;
  fcntl(peer, F_SETFL, flags);
  if (done < rest.size()) {
    errno = e;
    return Errno(what, absl::StrFormat("writing back %d bytes over the line discipline's room",
                                       rest.size() - done));
  }
  return absl::OkStatus();
}

// Whether the slave's line discipline stores what it receives unchanged
// under T, so that bytes beyond its room can wait in the tty's buffer.
bool IdentityInput(const termios& t) {
  return (t.c_lflag & (ICANON | ECHO | ECHONL | ISIG | IEXTEN)) == 0 &&
         (t.c_iflag & (ISTRIP | INLCR | IGNCR | ICRNL | IUCLC | IXON | PARMRK)) == 0;
}

}  // namespace

absl::Status Drain(int master, int slave, const std::string& what, Queued& out) {
  Saved saved(master, slave);
  if (auto s = saved.Take(what); !s.ok()) return s;
  const termios& t = saved.termios_value();
  int packet = 0;
  if (ioctl(master, TIOCGPKT, &packet) != 0) return Errno(what, "TIOCGPKT");
  if (fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) != 0 ||
      fcntl(slave, F_SETFL, fcntl(slave, F_GETFL) | O_NONBLOCK) != 0) {
    return Errno(what, "F_SETFL O_NONBLOCK");
  }
  // The slave first: reading it runs what still waits in its tty buffer
  // through the line discipline, which may echo to the master's side.
  absl::Status s;
  if (t.c_lflag & ICANON) {
    s = DrainCanonical(slave, t, what, out);
  } else {
    s = DrainRaw(slave, false, what, "reading the slave's queued input", out.to_slave);
  }
  if (s.ok()) {
    s = DrainRaw(master, packet != 0, what, "reading the master's queued input", out.to_master);
  }
  absl::Status r = saved.Restore();
  if (!s.ok()) return s;
  if (!r.ok()) return r;
  if ((t.c_lflag & EXTPROC) && !out.to_slave.empty() && out.not_exact.empty()) {
    out.not_exact = "input is queued while EXTPROC (external line editing) is on";
  }
  // Beyond what a line discipline holds, the bytes waited in the tty's
  // buffer. For the master they go back there exactly (written to the slave
  // without output processing); for the slave only if its input processing
  // leaves them as they are.
  if (out.not_exact.empty() && out.to_slave.size() > kMaxQueued && !IdentityInput(t)) {
    out.not_exact = absl::StrFormat(
        "%d bytes are queued for the slave, more than the %d its line discipline holds, and its "
        "input processing would change the rest",
        out.to_slave.size(), kMaxQueued);
  }
  log::Debug("tty: %s: %d bytes queued for the slave, %d for the master", what, out.to_slave.size(),
             out.to_master.size());
  return absl::OkStatus();
}

absl::Status Refill(int master, int slave, const Queued& q, const std::string& what) {
  if (q.to_slave.empty() && q.to_master.empty()) return absl::OkStatus();
  Saved saved(master, slave);
  if (auto s = saved.Take(what); !s.ok()) return s;
  const termios& t = saved.termios_value();
  absl::Status s;
  std::string_view to_slave(q.to_slave), to_master(q.to_master);
  std::string_view slave_rest, master_rest;
  if (to_slave.size() > kMaxQueued) {
    slave_rest = to_slave.substr(kMaxQueued);
    to_slave = to_slave.substr(0, kMaxQueued);
  }
  if (to_master.size() > kMaxQueued) {
    master_rest = to_master.substr(kMaxQueued);
    to_master = to_master.substr(0, kMaxQueued);
  }
  if (!to_slave.empty()) {
    termios x = Transparent(t);
    if (ioctl(slave, TCSETS, &x) != 0) {
      s = Errno(what, "TCSETS (transparent)");
    } else {
      s = Inject(slave, to_slave, what, "TIOCSTI on the slave");
    }
    if (s.ok()) {
      auto inq = Readable(slave, what);
      size_t want = (t.c_lflag & ICANON) ? ExpectedCanonicalInq(to_slave, t) : to_slave.size();
      if (!inq.ok()) {
        s = inq.status();
      } else if (static_cast<size_t>(*inq) != want) {
        s = absl::DataLossError(
            absl::StrFormat("%s: the slave's line discipline shows %d readable bytes, %d expected",
                            what, *inq, want));
      }
    }
  }
  // The master's side even when the slave's failed: at dump these bytes are
  // the tree's, and only here.
  if (!to_master.empty()) {
    absl::Status m = Inject(master, to_master, what, "TIOCSTI on the master");
    if (m.ok()) {
      auto inq = Readable(master, what);
      if (!inq.ok()) {
        m = inq.status();
      } else if (static_cast<size_t>(*inq) != to_master.size()) {
        m = absl::DataLossError(
            absl::StrFormat("%s: the master's line discipline shows %d readable bytes, %d expected",
                            what, *inq, to_master.size()));
      }
    }
    if (s.ok()) s = m;
  }
  if (!master_rest.empty()) {
    // Through the slave without OPOST: into the master's tty buffer as is.
    termios raw_out = t;
    raw_out.c_oflag &= ~OPOST;
    absl::Status o = ioctl(slave, TCSETS, &raw_out) == 0 ? Overflow(slave, master_rest, what)
                                                         : Errno(what, "TCSETS (no OPOST)");
    if (s.ok()) s = o;
  }
  if (!slave_rest.empty()) {
    // The master writes without output processing (its termios are raw).
    absl::Status o = Overflow(master, slave_rest, what);
    if (s.ok()) s = o;
  }
  absl::Status r = saved.Restore();
  if (s.ok()) s = r;
  // Our TCSETS calls may have queued a flow-control status for a master in
  // packet mode; switching packet mode on again clears it.
  int packet = 0;
  if (s.ok() && ioctl(master, TIOCGPKT, &packet) == 0 && packet) {
    int off = 0, on = 1;
    if (ioctl(master, TIOCPKT, &off) != 0 || ioctl(master, TIOCPKT, &on) != 0) {
      s = Errno(what, "TIOCPKT");
    }
  }
  return s;
}

}  // namespace crpp::resources::tty
