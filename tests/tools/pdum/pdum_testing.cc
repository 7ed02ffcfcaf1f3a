#include "tests/tools/pdum/pdum_testing.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/proc/proc.h"
#include "tools/common/process.h"

namespace crpp::pdum_test {
namespace {

using Clock = std::chrono::steady_clock;

std::string Runfile(const std::string& path) {
  auto found = tools::FindRunfile(path);
  return found.ok() ? *found : path;
}

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

std::string PdumBinary() { return Runfile("tools/pdum/pdum-criu"); }
std::string GoblinBinary() { return Runfile("tests/e2e/programs/goblin"); }

std::string FreshPath(const std::string& name) {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/" + name;
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  return path;
}

Reaper::Reaper() { prctl(PR_SET_CHILD_SUBREAPER, 1); }

Reaper::~Reaper() {
  auto kids = proc::ListChildren(getpid());
  if (!kids.ok()) return;
  for (pid_t pid : *kids) KillAndReap(pid);
}

Pipe::Pipe() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) == 0) r = p[0], w = p[1];
}
Pipe::~Pipe() {
  CloseRead();
  CloseWrite();
}
void Pipe::CloseRead() {
  if (r >= 0) close(r);
  r = -1;
}
void Pipe::CloseWrite() {
  if (w >= 0) close(w);
  w = -1;
}

pid_t Spawn(const std::vector<std::string>& argv, int in, int out, int err, bool new_session,
            const std::string& argv0, void (*before_exec)()) {
  std::vector<std::string> shown = argv;
  if (!argv0.empty()) shown[0] = argv0;
  std::vector<char*> c;
  for (std::string& a : shown) c.push_back(a.data());
  c.push_back(nullptr);
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    if (new_session) setsid();
    // dup2 onto 0-2 clears FD_CLOEXEC there; everything else of ours closes at exec.
    const int from[3] = {in >= 0 ? in : null, out >= 0 ? out : null, err >= 0 ? err : null};
    int moved[3];
    for (int n = 0; n < 3; ++n) moved[n] = fcntl(from[n], F_DUPFD_CLOEXEC, 10);
    for (int n = 0; n < 3; ++n) dup2(moved[n], n);
    if (before_exec != nullptr) before_exec();
    execv(argv[0].c_str(), c.data());
    _exit(127);
  }
  close(null);
  return pid;
}

std::optional<int> WaitFor(pid_t pid, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 || Clock::now() > deadline) return std::nullopt;
    usleep(5000);
  }
}

void KillAndReap(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

std::string ReadLine(int fd, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string line;
  for (;;) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, MsLeft(deadline)) <= 0) break;
    char c;
    if (read(fd, &c, 1) != 1) break;
    if (c == '\n') return line;
    line += c;
  }
  return line + "(no answer)";
}

std::string ReadLineStartingWith(int fd, const std::string& prefix, std::string* skipped,
                                 int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    std::string line = ReadLine(fd, MsLeft(deadline));
    if (line.starts_with(prefix)) return line;
    if (skipped != nullptr) *skipped += line + "\n";
    if (line.ends_with("(no answer)")) return "(no answer)";
  }
}

std::string ReadToEnd(int fd, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, MsLeft(deadline)) <= 0) return out;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, n);
  }
}

void WriteLine(int fd, const std::string& line) {
  const std::string text = line + "\n";
  (void)!write(fd, text.data(), text.size());
}

int Ran::exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

Ran RunPdum(const std::vector<std::string>& args, void (*before_exec)()) {
  std::vector<std::string> argv = {PdumBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Pipe out, err;
  pid_t pid = Spawn(argv, -1, out.w, err.w, false, "", before_exec);
  out.CloseWrite();
  err.CloseWrite();
  Ran ran;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  pollfd p[2] = {{out.r, POLLIN, 0}, {err.r, POLLIN, 0}};
  std::string* sink[2] = {&ran.out, &ran.err};
  for (int open = 2; open > 0 && MsLeft(deadline) > 0;) {
    if (poll(p, 2, MsLeft(deadline)) <= 0) break;
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        sink[i]->append(buf, n);
      } else {
        p[i].fd = -1;
        --open;
      }
    }
  }
  if (auto status = WaitFor(pid, MsLeft(deadline) + 100)) {
    ran.status = *status;
  } else {
    KillAndReap(pid);
    ran.err += "(pdum-criu did not finish within 60 s: killed)";
  }
  return ran;
}

bool Goblin::Start(const std::string& argv0) {
  pid = Spawn({GoblinBinary()}, in.r, out.w, err.w, /*new_session=*/true, argv0);
  in.CloseRead();
  out.CloseWrite();
  err.CloseWrite();
  return pid > 0 && Talk("hello", 1).empty();
}

std::string Goblin::Talk(const std::string& line, int n) {
  WriteLine(in.w, line);
  const std::string got_out = ReadLine(out.r), got_err = ReadLine(err.r);
  const std::string want_err = "count " + std::to_string(n);
  if (got_out == Answer(line, n) && got_err == want_err) return "";
  return "the goblin answered '" + got_out + "' / '" + got_err + "', not '" + Answer(line, n) +
         "' / '" + want_err + "'";
}

std::string Answer(const std::string& line, int n) {
  std::string upper = line;
  for (char& c : upper) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return std::to_string(n) + ":" + upper;
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace crpp::pdum_test
