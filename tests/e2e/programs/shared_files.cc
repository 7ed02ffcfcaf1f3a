// shared_files: processes sharing one fd table. A child made with
// clone(CLONE_FILES) shares the program's table, and a grandchild it made
// the same way shares it too; another grandchild, made by fork(), has a copy
// of its own.
// Setup: OUTDIR/data holds 8 KiB of a known pattern. The program opens it
// at offset 1000 and fills a pipe with 3000 bytes of the pattern; the
// sharing child opens it at offset 5000, the sharing grandchild at 6000, and
// then the program at 7000 (fds opened on both sides of the clone). The
// forked grandchild holds a copy of the table as it was then and waits.
// Verdict: each of the three checks from the inside what it sees: the
// program reads 100 bytes of the file at 1000 and the first 1000 bytes in
// the pipe; the sharing child, through the same fds, reads the file on at
// 1100 (one description, one offset), the other 2000 bytes of the pipe, and
// finds its own fd and the program's at their offsets; the sharing
// grandchild finds its own. Then the sharing is shown real: each sharer
// opens a file and closes an fd, and the program finds the new fd at its
// offset and the closed one gone; the program opens one and closes another,
// and both sharers see that. The forked grandchild holds the fds it held.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/programs/common.h"

namespace {

constexpr int kFileSize = 8192;

char Pattern(long i) { return static_cast<char>('a' + (i * 7 + i / 26) % 26); }

std::string Expected(long from, long n) {
  std::string s;
  for (long i = from; i < from + n; ++i) s += Pattern(i);
  return s;
}

// N bytes read from FD (fewer at the end of the file).
std::string ReadN(int fd, long n) {
  std::string s(static_cast<size_t>(n), '\0');
  long got = 0;
  while (got < n) {
    ssize_t r = read(fd, &s[static_cast<size_t>(got)], static_cast<size_t>(n - got));
    if (r <= 0) break;
    got += r;
  }
  s.resize(static_cast<size_t>(got));
  return s;
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

std::string Target(int fd) {
  char buf[PATH_MAX];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf - 1);
  return n < 0 ? "?" : std::string(buf, static_cast<size_t>(n));
}

// "" if fd FD is the data file at offset AT, else what is wrong.
std::string CheckAt(int fd, long at, const std::string& data) {
  if (!IsOpen(fd)) return "fd " + std::to_string(fd) + " is not open";
  if (Target(fd) != data) return "fd " + std::to_string(fd) + " is " + Target(fd);
  long pos = lseek(fd, 0, SEEK_CUR);
  if (pos != at) {
    return "fd " + std::to_string(fd) + " is at " + std::to_string(pos) + ", not " +
           std::to_string(at);
  }
  return "";
}

// Opens the data file at offset AT; -1 on failure.
int OpenAt(const std::string& data, long at) {
  int fd = open(data.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0 && lseek(fd, at, SEEK_SET) != at) return -1;
  return fd;
}

std::vector<long> Numbers(const std::string& line) {
  std::istringstream in(line);
  std::string word;
  in >> word;
  std::vector<long> out;
  for (long n; in >> n;) out.push_back(n);
  return out;
}

// One of the two sharers: answers the program's commands, one line each on
// CMD, with one line on ACK ("ok" or what is wrong, or "fd N"):
//   verify FILE PARENT FLIGHT  (the child) the file fd at 1100, 100 bytes
//       of it; its own fd; the program's fd PARENT at 7000; the rest of the
//       pipe FLIGHT;
//   verify  (the grandchild) its own fd;
//   open AT  opens the data file at AT and answers its number;
//   close N  closes fd N;
//   sees N GONE  fd N is the data file at 777 and fd GONE is closed;
//   quit  kills and collects `children` (the child's: both grandchildren)
//       and exits, answering nothing: no pid of the program's session is
//       left to a reaper that may be slow (the next restore needs them).
[[noreturn]] void Serve(int cmd, int ack, int own_fd, long own_at, const std::string& data,
                        const std::vector<pid_t>& children) {
  for (;;) {
    const std::string line = crpp::e2e::ReadLine(cmd);
    const std::vector<long> n = Numbers(line);
    std::string wrong;
    if (line.rfind("verify", 0) == 0) {
      wrong = CheckAt(own_fd, own_at, data);
      if (wrong.empty() && ReadN(own_fd, 50) != Expected(own_at, 50)) wrong = "own fd's bytes";
      if (wrong.empty() && n.size() == 3) {
        const int file = static_cast<int>(n[0]), parent = static_cast<int>(n[1]),
                  flight = static_cast<int>(n[2]);
        wrong = CheckAt(file, 1100, data);
        if (wrong.empty() && ReadN(file, 100) != Expected(1100, 100)) {
          wrong = "the file read on at 1100 holds other bytes";
        }
        if (wrong.empty()) wrong = CheckAt(parent, 7000, data);
        int left = -1;
        if (wrong.empty() && (ReadN(flight, 2000) != Expected(1000, 2000) ||
                              ioctl(flight, FIONREAD, &left) != 0 || left != 0)) {
          wrong = "the pipe's last 2000 bytes are not the pattern's (then " + std::to_string(left) +
                  " left)";
        }
      }
      crpp::e2e::WriteLine(ack, wrong.empty() ? "ok" : wrong);
    } else if (line.rfind("open", 0) == 0 && n.size() == 1) {
      crpp::e2e::WriteLine(ack, "fd " + std::to_string(OpenAt(data, n[0])));
    } else if (line.rfind("close", 0) == 0 && n.size() == 1) {
      crpp::e2e::WriteLine(ack, close(static_cast<int>(n[0])) == 0 ? "ok" : "close failed");
    } else if (line == "quit" || line.empty()) {
      for (pid_t c : children) kill(c, SIGKILL);
      for (pid_t c : children) waitpid(c, nullptr, 0);
      _exit(0);
    } else if (line.rfind("sees", 0) == 0 && n.size() == 2) {
      wrong = CheckAt(static_cast<int>(n[0]), 777, data);
      if (wrong.empty() && IsOpen(static_cast<int>(n[1]))) {
        wrong = "fd " + std::to_string(n[1]) + ", closed by the program, is open";
      }
      crpp::e2e::WriteLine(ack, wrong.empty() ? "ok" : wrong);
    } else {
      crpp::e2e::WriteLine(ack, "bad command: " + line);
    }
  }
}

// Like fork(), but the child shares the caller's fd table.
pid_t CloneFiles() {
  return static_cast<pid_t>(syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0));
}

std::set<int> FdsOf(pid_t pid) {
  std::set<int> fds;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    fds.insert(atoi(e.path().filename().c_str()));
  }
  return fds;
}

struct Sharer {
  int cmd[2], ack[2];
  pid_t pid = -1;
  std::string Ask(const std::string& line) const {
    crpp::e2e::WriteLine(cmd[1], line);
    return crpp::e2e::ReadLine(ack[0]);
  }
};

}  // namespace

int main(int argc, char** argv) {
  const std::string out = crpp::e2e::Setup(argc, argv, "shared_files");
  const std::string data = out + "/data";
  {
    int fd = open(data.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const std::string all = Expected(0, kFileSize);
    if (fd < 0 || write(fd, all.data(), all.size()) != kFileSize || close(fd) != 0) {
      crpp::e2e::Die("writing OUTDIR/data");
    }
  }
  const pid_t root = getpid();
  const int file = OpenAt(data, 1000);
  int flight[2];
  Sharer child, grandchild;
  if (file < 0 || pipe2(flight, O_CLOEXEC) != 0 || pipe2(child.cmd, O_CLOEXEC) != 0 ||
      pipe2(child.ack, O_CLOEXEC) != 0 || pipe2(grandchild.cmd, O_CLOEXEC) != 0 ||
      pipe2(grandchild.ack, O_CLOEXEC) != 0) {
    crpp::e2e::Die("setup");
  }
  const std::string in_flight = Expected(0, 3000);
  if (write(flight[1], in_flight.data(), in_flight.size()) != 3000) crpp::e2e::Die("write");

  child.pid = CloneFiles();
  if (child.pid < 0) crpp::e2e::Die("clone(CLONE_FILES)");
  if (child.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != root) _exit(0);
    const pid_t me = getpid();
    const int own = OpenAt(data, 5000);
    grandchild.pid = CloneFiles();
    if (grandchild.pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != me) _exit(0);
      const int mine = OpenAt(data, 6000);
      crpp::e2e::WriteLine(grandchild.ack[1], "ready " + std::to_string(mine));
      Serve(grandchild.cmd[0], grandchild.ack[1], mine, 6000, data, {});
    }
    if (crpp::e2e::ReadLine(grandchild.ack[0]).rfind("ready", 0) != 0) _exit(2);
    // A copy of the table as it is now, for good.
    const pid_t copy = fork();
    if (copy == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != me) _exit(0);
      for (;;) pause();
    }
    crpp::e2e::WriteLine(child.ack[1], "ready " + std::to_string(own) + " " +
                                           std::to_string(grandchild.pid) + " " +
                                           std::to_string(copy));
    Serve(child.cmd[0], child.ack[1], own, 5000, data, {grandchild.pid, copy});
  }
  const std::vector<long> ready = Numbers(crpp::e2e::ReadLine(child.ack[0]));
  if (ready.size() != 3 || ready[0] < 0 || ready[1] <= 0 || ready[2] <= 0) {
    crpp::e2e::Die("the sharing child's setup");
  }
  const int child_fd = static_cast<int>(ready[0]);
  grandchild.pid = static_cast<pid_t>(ready[1]);
  const pid_t copy = static_cast<pid_t>(ready[2]);
  const int parent_fd = OpenAt(data, 7000);
  if (parent_fd < 0) crpp::e2e::Die("open");
  const std::set<int> copy_fds = FdsOf(copy);
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  crpp::e2e::Verdict v;
  // The program's own fds.
  std::string wrong = CheckAt(file, 1000, data);
  v.Expect(wrong.empty(), "program: %s", wrong.c_str());
  v.Expect(ReadN(file, 100) == Expected(1000, 100), "program: the file at 1000 holds other bytes");
  wrong = CheckAt(parent_fd, 7000, data);
  v.Expect(wrong.empty(), "program: %s", wrong.c_str());
  v.Expect(ReadN(flight[0], 1000) == Expected(0, 1000),
           "program: the pipe's first 1000 bytes are not the pattern's");
  // What the sharers see through the same table.
  std::string said = child.Ask("verify " + std::to_string(file) + " " + std::to_string(parent_fd) +
                               " " + std::to_string(flight[0]));
  v.Expect(said == "ok", "child: %s", said.c_str());
  said = grandchild.Ask("verify");
  v.Expect(said == "ok", "grandchild: %s", said.c_str());
  // One table: what a sharer opens or closes, the program sees, and back.
  for (Sharer* s : {&child, &grandchild}) {
    const char* who = s == &child ? "child" : "grandchild";
    const std::vector<long> opened = Numbers(s->Ask("open 4242"));
    const int fd = opened.size() == 1 ? static_cast<int>(opened[0]) : -1;
    wrong = fd < 0 ? "it could not" : CheckAt(fd, 4242, data);
    v.Expect(wrong.empty(), "the fd the %s opened, in the program: %s", who, wrong.c_str());
    const int victim = s == &child ? child_fd : fd;
    said = s->Ask("close " + std::to_string(victim));
    v.Expect(said == "ok" && !IsOpen(victim), "fd %d, closed by the %s (%s), is open", victim, who,
             said.c_str());
  }
  const int mine = OpenAt(data, 777);
  v.Expect(mine >= 0 && close(parent_fd) == 0, "the program could not open and close");
  for (Sharer* s : {&child, &grandchild}) {
    said = s->Ask("sees " + std::to_string(mine) + " " + std::to_string(parent_fd));
    v.Expect(said == "ok", "%s: %s", s == &child ? "child" : "grandchild", said.c_str());
  }
  // The forked copy kept its own table.
  const std::set<int> now = FdsOf(copy);
  v.Expect(now == copy_fds, "the forked grandchild holds %zu fds, not the %zu it held", now.size(),
           copy_fds.size());
  v.Note("child=%d grandchild=%d copy=%d fds=%zu", child.pid, grandchild.pid, copy,
         FdsOf(root).size());
  crpp::e2e::WriteLine(child.cmd[1], "quit");
  int status = 0;
  v.Expect(waitpid(child.pid, &status, 0) == child.pid && WIFEXITED(status),
           "the child did not quit");
  v.Finish();
}
