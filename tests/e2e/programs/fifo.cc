// fifo: two named FIFOs in OUTDIR with data in them.
//   OUTDIR/stream: the root holds the read end (O_NONBLOCK), a child the
//     write end; the child wrote 3000 bytes of a known sequence that nobody
//     has read yet.
//   OUTDIR/box: opened read-write once, before the fork (root and child share
//     the description), holding "0123456789".
// Verdict (root): reads exactly the 3000 bytes in order; asks the child (SIGUSR2)
// for 1000 more and reads them in order; reads the 10 bytes of box; the read
// end still is O_RDONLY|O_NONBLOCK at OUTDIR/stream; the child exits 0.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <climits>
#include <cstring>
#include <string>

#include "tests/e2e/programs/common.h"

namespace {

volatile sig_atomic_t g_more = 0;

void OnUsr2(int) { g_more = 1; }

uint8_t ByteAt(size_t i) { return static_cast<uint8_t>((i * 7 + i / 251) & 0xff); }

void WriteSequence(int fd, size_t from, size_t n) {
  for (size_t i = from; i < from + n; ++i) {
    const uint8_t b = ByteAt(i);
    if (write(fd, &b, 1) != 1) _exit(3);
  }
}

// Reads N bytes from the non-blocking FD (waiting up to 2 s for them) and
// checks they continue the sequence at FROM; "" when they do.
std::string ReadSequence(int fd, size_t from, size_t n) {
  std::string got;
  for (int waited = 0; got.size() < n && waited < 2000;) {
    char buf[4096];
    ssize_t r = read(fd, buf, std::min(sizeof buf, n - got.size()));
    if (r > 0) {
      got.append(buf, static_cast<size_t>(r));
    } else {
      crpp::e2e::SleepMs(5);
      waited += 5;
    }
  }
  if (got.size() != n) {
    return "read " + std::to_string(got.size()) + " of " + std::to_string(n) + " bytes";
  }
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<uint8_t>(got[i]) != ByteAt(from + i)) {
      return "byte " + std::to_string(from + i) + " is wrong";
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "fifo");
  const std::string stream = out + "/stream", box = out + "/box";
  if (mkfifo(stream.c_str(), 0600) != 0 || mkfifo(box.c_str(), 0600) != 0) {
    crpp::e2e::Die("mkfifo");
  }
  int box_fd = open(box.c_str(), O_RDWR | O_NONBLOCK);
  if (box_fd < 0 || write(box_fd, "0123456789", 10) != 10) crpp::e2e::Die("box");
  int reader = open(stream.c_str(), O_RDONLY | O_NONBLOCK);
  if (reader < 0) crpp::e2e::Die("open stream");
  const pid_t root = getpid();
  pid_t child = fork();
  if (child < 0) crpp::e2e::Die("fork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    close(reader);
    signal(SIGUSR2, OnUsr2);
    int writer = open(stream.c_str(), O_WRONLY);
    if (writer < 0) _exit(3);
    WriteSequence(writer, 0, 3000);
    while (!g_more) pause();
    WriteSequence(writer, 3000, 1000);
    _exit(0);
  }
  // The child's 3000 bytes are in the FIFO before the program says ready.
  int queued = 0;
  for (int i = 0; i < 1000 && queued < 3000; ++i) {
    crpp::e2e::SleepMs(2);
    ioctl(reader, FIONREAD, &queued);
  }
  if (queued != 3000) crpp::e2e::Die("the child did not write");
  crpp::e2e::Ready();
  const uint64_t ticks = crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  std::string problem = ReadSequence(reader, 0, 3000);
  v.Expect(problem.empty(), "stream before: %s", problem.c_str());
  kill(child, SIGUSR2);
  problem = ReadSequence(reader, 3000, 1000);
  v.Expect(problem.empty(), "stream after: %s", problem.c_str());
  char got[16] = {};
  v.Expect(read(box_fd, got, sizeof got) == 10 && memcmp(got, "0123456789", 10) == 0,
           "box holds \"%s\"", got);
  const int flags = fcntl(reader, F_GETFL);
  v.Expect((flags & O_ACCMODE) == O_RDONLY && (flags & O_NONBLOCK), "reader flags are %#o", flags);
  char link[PATH_MAX] = {};
  readlink(("/proc/self/fd/" + std::to_string(reader)).c_str(), link, sizeof link - 1);
  v.Expect(stream == link, "the read end is %s", link);
  int st = 0;
  v.Expect(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "the child did not exit with status 0");
  v.Note("ticks=%" PRIu64 " child=%d", ticks, child);
  v.Finish();
}
