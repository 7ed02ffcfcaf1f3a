#define BOOST_TEST_MODULE pty_queue
#include "resources/tty/pty_queue.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <string>
#include <vector>

namespace crpp::resources::tty {
namespace {

// A pty of the test's own, with the slave's termios set by the caller.
struct Pty {
  int master = -1, slave = -1;
  explicit Pty(const termios* t = nullptr) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    BOOST_REQUIRE(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
    slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    BOOST_REQUIRE(slave >= 0);
    if (t != nullptr) BOOST_REQUIRE(ioctl(slave, TCSETS, t) == 0);
  }
  ~Pty() {
    close(slave);
    close(master);
  }
  termios Get() const {
    termios t;
    memset(&t, 0, sizeof t);
    ioctl(slave, TCGETS, &t);
    return t;
  }
};

termios Canonical() {
  termios t;
  memset(&t, 0, sizeof t);
  t.c_iflag = ICRNL;
  t.c_oflag = OPOST | ONLCR;
  t.c_cflag = CS8 | CREAD | B38400;
  t.c_lflag = ICANON | ISIG | IEXTEN;
  t.c_cc[VEOF] = 4;
  t.c_cc[VINTR] = 3;
  t.c_cc[VERASE] = 0x7f;
  t.c_cc[VKILL] = 0x15;
  t.c_cc[VMIN] = 1;
  return t;
}

termios Raw() {
  termios t = Canonical();
  cfmakeraw(&t);
  return t;
}

void WriteAll(int fd, const std::string& s) {
  BOOST_REQUIRE(write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
}

// Waits until the line discipline of FD's end shows N readable bytes.
void WaitReadable(int fd, int n) {
  for (int i = 0; i < 200; ++i) {
    int have = 0;
    ioctl(fd, TIOCINQ, &have);
    if (have == n) return;
    usleep(5000);
  }
  BOOST_FAIL("the line discipline never showed " << n << " bytes");
}

// What successive non-blocking reads of FD return, each one an element.
std::vector<std::string> Reads(int fd) {
  std::vector<std::string> out;
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  for (int i = 0; i < 100; ++i) {
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) break;
    out.emplace_back(buf, static_cast<size_t>(n));
    if (n == 0 && out.size() > 1 && out[out.size() - 2].empty()) break;
  }
  fcntl(fd, F_SETFL, flags);
  return out;
}

// Reads FD until nothing came for 100 ms.
std::string ReadAll(int fd) {
  std::string out;
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  for (int idle = 0; idle < 20;) {
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      idle = 0;
    } else {
      usleep(5000);
      ++idle;
    }
  }
  fcntl(fd, F_SETFL, flags);
  return out;
}

}  // namespace

// Canonical input: complete lines, a line VEOF ended, the unfinished one; an
// echo waiting on the master. Drained and refilled, a reader finds the same
// reads, and the unfinished line goes on.
BOOST_AUTO_TEST_CASE(canonical_lines_survive) {
  termios t = Canonical();
  t.c_lflag |= ECHO;
  Pty pty(&t);
  WriteAll(pty.master,
           "one\rtwo\n\x04"
           "eof\x04"
           "part");
  WaitReadable(pty.slave, 8 + 3);  // "one\n", "two\n", "", "eof"
  Queued q;
  BOOST_REQUIRE(Drain(pty.master, pty.slave, "pty", q).ok());
  BOOST_TEST(q.not_exact == "");
  BOOST_TEST(q.to_slave ==
             "one\ntwo\n\x04"
             "eof\x04"
             "part");
  int inq = -1;
  ioctl(pty.slave, TIOCINQ, &inq);
  BOOST_TEST(inq == 0);
  BOOST_TEST((pty.Get().c_lflag & ICANON) != 0);
  BOOST_REQUIRE(Refill(pty.master, pty.slave, q, "pty").ok());
  // The echo was read out and put back, not made again.
  BOOST_TEST(ReadAll(pty.master) == q.to_master);
  WriteAll(pty.master, "-end\r");
  std::vector<std::string> reads = Reads(pty.slave);
  std::vector<std::string> want = {"one\n", "two\n", "", "eof", "part-end\n"};
  BOOST_TEST(reads.size() >= want.size());
  for (size_t i = 0; i < want.size() && i < reads.size(); ++i) BOOST_TEST(reads[i] == want[i]);
}

// Raw input with NULs and every byte value, and output the slave wrote
// (ONLCR applied once): both come back byte for byte.
BOOST_AUTO_TEST_CASE(raw_bytes_survive) {
  termios t = Raw();
  t.c_oflag = OPOST | ONLCR;
  Pty pty(&t);
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  WriteAll(pty.master, bytes);
  WriteAll(pty.slave, "out\nput\n");
  WaitReadable(pty.slave, 256);
  WaitReadable(pty.master, 10);
  Queued q;
  BOOST_REQUIRE(Drain(pty.master, pty.slave, "pty", q).ok());
  BOOST_TEST(q.to_slave == bytes);
  BOOST_TEST(q.to_master == "out\r\nput\r\n");
  BOOST_REQUIRE(Refill(pty.master, pty.slave, q, "pty").ok());
  BOOST_TEST(ReadAll(pty.slave) == bytes);
  BOOST_TEST(ReadAll(pty.master) == "out\r\nput\r\n");
}

// More than a line discipline holds: the rest waited in the tty buffer and
// goes back there, unchanged, in order.
BOOST_AUTO_TEST_CASE(more_than_the_line_discipline_holds) {
  termios t = Raw();
  t.c_oflag = OPOST | ONLCR;
  Pty pty(&t);
  std::string in, out;
  for (int i = 0; i < 9000; ++i) in.push_back(static_cast<char>('a' + i % 26));
  for (int i = 0; i < 6000; ++i)
    out.push_back(i % 50 == 49 ? '\n' : static_cast<char>('0' + i % 10));
  fcntl(pty.master, F_SETFL, O_NONBLOCK);
  fcntl(pty.slave, F_SETFL, O_NONBLOCK);
  WriteAll(pty.master, in);
  WriteAll(pty.slave, out);
  usleep(50000);
  Queued q;
  BOOST_REQUIRE(Drain(pty.master, pty.slave, "pty", q).ok());
  BOOST_TEST(q.not_exact == "");
  BOOST_TEST(q.to_slave.size() == in.size());
  BOOST_REQUIRE(Refill(pty.master, pty.slave, q, "pty").ok());
  BOOST_TEST(ReadAll(pty.slave) == in);
  std::string processed;
  for (char c : out) processed += c == '\n' ? std::string("\r\n") : std::string(1, c);
  BOOST_TEST(ReadAll(pty.master) == processed);
  BOOST_TEST(pty.Get().c_oflag == t.c_oflag);
}

// Too much canonical input to put back exactly: said, and still every byte
// put back.
BOOST_AUTO_TEST_CASE(too_much_canonical_input_is_not_exact) {
  termios t = Canonical();
  Pty pty(&t);
  std::string lines;
  for (int i = 0; i < 500; ++i) lines += "line-" + std::to_string(1000 + i) + "\n";  // 5500 bytes
  fcntl(pty.master, F_SETFL, O_NONBLOCK);
  WriteAll(pty.master, lines);
  usleep(50000);
  Queued q;
  BOOST_REQUIRE(Drain(pty.master, pty.slave, "pty", q).ok());
  BOOST_TEST(q.to_slave == lines);
  BOOST_TEST(q.not_exact.find("more than the 4095") != std::string::npos, q.not_exact);
  BOOST_REQUIRE(Refill(pty.master, pty.slave, q, "pty").ok());
  BOOST_TEST(ReadAll(pty.slave) == lines);
}

// A line holding the VEOF character (typed after VLNEXT) cannot be told
// from two lines: not exact.
BOOST_AUTO_TEST_CASE(quoted_eof_character_is_not_exact) {
  termios t = Canonical();
  t.c_cc[VLNEXT] = 0x16;
  Pty pty(&t);
  WriteAll(pty.master,
           "a\x16\x04"
           "b\n");
  WaitReadable(pty.slave, 4);
  Queued q;
  BOOST_REQUIRE(Drain(pty.master, pty.slave, "pty", q).ok());
  BOOST_TEST(q.not_exact.find("line-end or EOF character") != std::string::npos, q.not_exact);
  BOOST_REQUIRE(Refill(pty.master, pty.slave, q, "pty").ok());
}

// Locked termios (ICANON locked on) do not keep the drain from reading the
// unfinished line, and are locked again afterwards; packet mode stays on
// without a status left pending.
BOOST_AUTO_TEST_CASE(locked_termios_and_packet_mode) {
  termios t = Canonical();
  Pty pty(&t);
  termios locked;
  memset(&locked, 0, sizeof locked);
  locked.c_lflag = ICANON;
  BOOST_REQUIRE(ioctl(pty.slave, TIOCSLCKTRMIOS, &locked) == 0);
  int on = 1;
  BOOST_REQUIRE(ioctl(pty.master, TIOCPKT, &on) == 0);
  WriteAll(pty.master, "whole\npart");
  WriteAll(pty.slave, "back\n");
  WaitReadable(pty.slave, 6);
  WaitReadable(pty.master, 6);
  Queued q;
  BOOST_REQUIRE(Drain(pty.master, pty.slave, "pty", q).ok());
  BOOST_TEST(q.to_slave == "whole\npart");
  BOOST_TEST(q.to_master == "back\r\n");
  BOOST_REQUIRE(Refill(pty.master, pty.slave, q, "pty").ok());
  termios now;
  memset(&now, 0, sizeof now);
  BOOST_REQUIRE(ioctl(pty.slave, TIOCGLCKTRMIOS, &now) == 0);
  BOOST_TEST(now.c_lflag == static_cast<tcflag_t>(ICANON));
  int packet = 0;
  ioctl(pty.master, TIOCGPKT, &packet);
  BOOST_TEST(packet == 1);
  std::string got = ReadAll(pty.master);
  BOOST_TEST(got == std::string(1, TIOCPKT_DATA) + "back\r\n");
}

}  // namespace crpp::resources::tty
