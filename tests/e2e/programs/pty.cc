// pty: a pseudo-terminal used as a session's controlling terminal, with bytes
// queued in both directions.
//   root        opens the pty (master O_NONBLOCK, packet mode; a slave of the
//               same description as the child's), sets termios (canonical,
//               no echo, INLCR|ICRNL, which swap \r and \n, so input run
//               through them twice comes out changed; OPOST|ONLCR; VINTR ^P,
//               VEOL '@'; 57600 baud), locks ICANON (TIOCSLCKTRMIOS, as
//               root), a window size of 37x101 (555x333 pixels) and
//               exclusive mode (as root).
//   child       setsid, takes the slave as controlling terminal (TIOCSCTTY),
//               writes "from-child\n" and "second\n" to it and makes the
//               grandchild's group the foreground one.
//   grandchild  a process group of its own, the tty's foreground group.
// At "ready" the slave holds, unread, the lines "line-one\n" (written as
// "line-one\r"), "at-end@" (ended by VEOL), "eof-line" (ended by VEOF) and
// the unfinished "partial"; the master holds "from-child\r\nsecond\r\n".
// Verdict (root): the master has the same index and /dev/pts/N, termios,
// locked termios, window size, packet, exclusive and lock state and file
// flags; it reads exactly the queued bytes; it writes "-rest\r" and asks the
// child, whose controlling terminal (stat's tty_nr, /dev/tty, tcgetsid) is the
// slave and whose tty's foreground group is the grandchild's; the grandchild
// (in the foreground) reads the four lines ("partial-rest\n" last), has the
// slave as controlling terminal and writes "ping\n", which the root reads
// from the master as "ping\r\n". Each process reaps its child once it
// answered.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

using crpp::e2e::Die;
using crpp::e2e::ReadLine;
using crpp::e2e::WriteLine;

constexpr char kToSlave[] = "line-one\rat-end@eof-line\x04partial";
constexpr char kSlaveLines[] = "line-one\nat-end@eof-line";  // what TIOCINQ counts
constexpr char kToMaster[] = "from-child\r\nsecond\r\n";
constexpr char kLastLine[] = "partial-rest\n";
// The kernel's struct termios (TCGETS) is the first 36 bytes of glibc's.
constexpr size_t kTermiosBytes = 4 * sizeof(tcflag_t) + 1 + 19;

struct Saved {
  unsigned index;
  termios t, locked;
  winsize ws;
};

termios Get(int fd, unsigned long request) {
  termios t;
  memset(&t, 0, sizeof t);
  if (ioctl(fd, request, &t) != 0) Die("TCGETS");
  return t;
}

// tty_nr of /proc/self/stat (field 7).
unsigned long CttyDevice() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  size_t paren = line.rfind(')');
  if (paren == std::string::npos) return 0;
  char state;
  int ppid, pgrp, session;
  unsigned long tty = 0;
  sscanf(line.c_str() + paren + 1, " %c %d %d %d %lu", &state, &ppid, &pgrp, &session, &tty);
  return tty;
}

bool Readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

// Reads the master (non-blocking, packet mode) until WANT bytes of data came
// or 2 s passed; the packet status bytes are checked and dropped.
std::string ReadMaster(int master, size_t want, std::string& bad_status) {
  std::string got;
  const int64_t until = crpp::e2e::NowMs() + 2000;
  while (got.size() < want && crpp::e2e::NowMs() < until) {
    char buf[512];
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) {
      crpp::e2e::SleepMs(10);
      continue;
    }
    if (buf[0] != TIOCPKT_DATA) {
      bad_status += std::to_string(static_cast<unsigned char>(buf[0])) + " ";
      continue;
    }
    got.append(buf + 1, static_cast<size_t>(n - 1));
  }
  return got;
}

// The grandchild: the foreground group. On a line from CTL it reads the
// queued lines, checks its terminal, writes "ping" and answers on RES.
[[noreturn]] void Grandchild(int slave, int ctl, int res) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  (void)ReadLine(ctl);
  crpp::e2e::Verdict v;
  const char* want[] = {"line-one\n", "at-end@", "eof-line", kLastLine};
  for (const char* w : want) {
    char buf[256];
    ssize_t n = Readable(slave, 2000) ? read(slave, buf, sizeof buf) : -1;
    std::string got = n >= 0 ? std::string(buf, static_cast<size_t>(n)) : "(nothing)";
    v.Expect(got == w, "grandchild read \"%s\" from the slave, not \"%s\"", got.c_str(), w);
  }
  struct stat st;
  fstat(slave, &st);
  v.Expect(CttyDevice() == st.st_rdev, "grandchild: controlling terminal %lu, not the slave",
           CttyDevice());
  v.Expect(getpgrp() == getpid(), "grandchild: in group %d", getpgrp());
  v.Expect(tcgetpgrp(slave) == getpid(), "grandchild: the foreground group is %d, not ours",
           tcgetpgrp(slave));
  v.Expect(write(slave, "ping\n", 5) == 5, "grandchild: writing ping: %s", strerror(errno));
  WriteLine(res, v.ok() ? "OK" : "FAIL " + v.failures());
  _exit(0);
}

// The child: leads the session whose controlling terminal is the slave.
[[noreturn]] void Child(int slave, int ctl, int res) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (setsid() < 0) _exit(3);
  if (ioctl(slave, TIOCSCTTY, 0) != 0) _exit(4);
  int gctl[2], gres[2];
  if (pipe(gctl) != 0 || pipe(gres) != 0) _exit(5);
  pid_t grandchild = fork();
  if (grandchild < 0) _exit(6);
  if (grandchild == 0) {
    setpgid(0, 0);
    Grandchild(slave, gctl[0], gres[1]);
  }
  setpgid(grandchild, grandchild);
  if (tcsetpgrp(slave, grandchild) != 0) _exit(7);
  if (write(slave, "from-child\n", 11) != 11 || write(slave, "second\n", 7) != 7) _exit(8);
  WriteLine(res, "set " + std::to_string(grandchild));

  (void)ReadLine(ctl);
  crpp::e2e::Verdict v;
  struct stat st;
  fstat(slave, &st);
  v.Expect(CttyDevice() == st.st_rdev, "child: controlling terminal %lu, not the slave %lu",
           CttyDevice(), static_cast<unsigned long>(st.st_rdev));
  int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
  v.Expect(tty >= 0, "child: open /dev/tty: %s", strerror(errno));
  if (tty >= 0) {
    v.Expect(tcgetsid(tty) == getpid(), "child: /dev/tty belongs to session %d", tcgetsid(tty));
    close(tty);
  }
  v.Expect(tcgetsid(slave) == getpid(), "child: the slave belongs to session %d", tcgetsid(slave));
  v.Expect(tcgetpgrp(slave) == grandchild, "child: the foreground group is %d, not %d",
           tcgetpgrp(slave), grandchild);
  WriteLine(gctl[1], "verify");
  std::string g = Readable(gres[0], 5000) ? ReadLine(gres[0]) : "no answer";
  v.Expect(g == "OK", "%s", g.substr(g.rfind("FAIL ", 0) == 0 ? 5 : 0).c_str());
  // Reaped before we answer: a restore of the same images may follow at once
  // (dump -R) and needs the pids free.
  if (g == "OK") waitpid(grandchild, nullptr, 0);
  WriteLine(res, v.ok() ? "OK" : "FAIL " + v.failures());
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "pty");
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) Die("posix_openpt");
  Saved saved;
  if (ioctl(master, TIOCGPTN, &saved.index) != 0) Die("TIOCGPTN");
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) Die("open the slave");

  termios t = Get(slave, TCGETS);
  t.c_iflag = INLCR | ICRNL;
  t.c_oflag = OPOST | ONLCR;
  t.c_lflag = ICANON | ISIG | IEXTEN;
  t.c_cflag = (t.c_cflag & ~CBAUD) | B57600;
  t.c_cc[VINTR] = 0x10;
  t.c_cc[VEOL] = '@';
  t.c_cc[VEOF] = 0x04;
  if (ioctl(slave, TCSETS, &t) != 0) Die("TCSETS");
  termios locked;
  memset(&locked, 0, sizeof locked);
  locked.c_lflag = ICANON;
  // It takes CAP_SYS_ADMIN in the first user namespace, which a sandboxed
  // run of the program (programs_selftest) lacks: there the termios stay
  // unlocked and the tty not exclusive (which would keep the children from
  // opening /dev/tty).
  const bool admin = ioctl(slave, TIOCSLCKTRMIOS, &locked) == 0;
  if (!admin && errno != EPERM) Die("TIOCSLCKTRMIOS");
  winsize ws = {37, 101, 555, 333};
  if (ioctl(slave, TIOCSWINSZ, &ws) != 0) Die("TIOCSWINSZ");
  int on = 1;
  if (ioctl(master, TIOCPKT, &on) != 0) Die("TIOCPKT");
  if (admin && ioctl(slave, TIOCEXCL) != 0) Die("TIOCEXCL");

  int ctl[2], res[2];
  if (pipe(ctl) != 0 || pipe(res) != 0) Die("pipe");
  pid_t child = fork();
  if (child < 0) Die("fork");
  if (child == 0) {
    close(master);
    Child(slave, ctl[0], res[1]);
  }
  std::string set = ReadLine(res[0]);
  if (set.rfind("set ", 0) != 0) Die("the child did not set up");
  if (write(master, kToSlave, sizeof kToSlave - 1) != sizeof kToSlave - 1) Die("write");
  if (fcntl(master, F_SETFL, O_NONBLOCK) != 0) Die("F_SETFL");
  // Ready once the line disciplines hold every byte.
  for (int i = 0;; ++i) {
    int to_slave = 0, to_master = 0;
    ioctl(slave, TIOCINQ, &to_slave);
    ioctl(master, TIOCINQ, &to_master);
    if (to_slave == sizeof kSlaveLines - 1 && to_master == sizeof kToMaster - 1) break;
    if (i == 200) Die("the queued bytes never arrived");
    crpp::e2e::SleepMs(10);
  }
  saved.t = Get(slave, TCGETS);
  saved.locked = Get(slave, TIOCGLCKTRMIOS);
  if (ioctl(slave, TIOCGWINSZ, &saved.ws) != 0) Die("TIOCGWINSZ");
  crpp::e2e::Ready();

  crpp::e2e::WaitForVerify(50);

  crpp::e2e::Verdict v;
  unsigned index = 0;
  v.Expect(ioctl(master, TIOCGPTN, &index) == 0 && index == saved.index,
           "the master's index is %u, not %u", index, saved.index);
  struct stat st;
  v.Expect(fstat(slave, &st) == 0 && minor(st.st_rdev) == saved.index, "the slave is device %u:%u",
           major(st.st_rdev), minor(st.st_rdev));
  const char* name = ptsname(master);
  v.Expect(name != nullptr && std::string(name) == "/dev/pts/" + std::to_string(saved.index),
           "ptsname says %s", name ? name : "nothing");
  termios now = Get(slave, TCGETS), now_locked = Get(slave, TIOCGLCKTRMIOS);
  v.Expect(memcmp(&now, &saved.t, kTermiosBytes) == 0,
           "termios changed: iflag %#x oflag %#x cflag %#x lflag %#x VINTR %d VEOL %d", now.c_iflag,
           now.c_oflag, now.c_cflag, now.c_lflag, now.c_cc[VINTR], now.c_cc[VEOL]);
  v.Expect(memcmp(&now_locked, &saved.locked, kTermiosBytes) == 0,
           "locked termios changed: lflag %#x", now_locked.c_lflag);
  winsize now_ws{};
  ioctl(slave, TIOCGWINSZ, &now_ws);
  v.Expect(memcmp(&now_ws, &saved.ws, sizeof now_ws) == 0, "window size %dx%d (%dx%d)",
           now_ws.ws_row, now_ws.ws_col, now_ws.ws_xpixel, now_ws.ws_ypixel);
  int packet = 0, exclusive = 0, lock = 1;
  ioctl(master, TIOCGPKT, &packet);
  ioctl(slave, TIOCGEXCL, &exclusive);
  ioctl(master, TIOCGPTLCK, &lock);
  v.Expect(packet == 1 && exclusive == (admin ? 1 : 0) && lock == 0,
           "packet %d, exclusive %d, locked %d", packet, exclusive, lock);
  v.Expect((fcntl(master, F_GETFL) & O_NONBLOCK) && !(fcntl(slave, F_GETFL) & O_NONBLOCK),
           "file flags: master %#o, slave %#o", fcntl(master, F_GETFL), fcntl(slave, F_GETFL));

  std::string status;
  std::string got = ReadMaster(master, sizeof kToMaster - 1, status);
  v.Expect(got == kToMaster, "the master read \"%s\" (%zu bytes)", got.c_str(), got.size());
  v.Expect(status.empty(), "packet statuses %s", status.c_str());
  v.Expect(write(master, "-rest\r", 6) == 6, "writing -rest: %s", strerror(errno));
  WriteLine(ctl[1], "verify");
  std::string answer = Readable(res[0], 8000) ? ReadLine(res[0]) : "the child did not answer";
  v.Expect(answer == "OK", "%s", answer.substr(answer.rfind("FAIL ", 0) == 0 ? 5 : 0).c_str());
  if (answer == "OK") waitpid(child, nullptr, 0);
  got = ReadMaster(master, 6, status);
  v.Expect(got == "ping\r\n", "the master read \"%s\" after the ping", got.c_str());
  v.Note("pty %u, %zu + %zu bytes queued%s", saved.index, sizeof kToSlave - 1, sizeof kToMaster - 1,
         admin ? ", ICANON locked, exclusive" : "");
  v.Finish();
}
