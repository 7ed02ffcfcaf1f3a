#include "tests/e2e/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tools/common/files.h"

extern char** environ;

namespace crpp::e2e {
namespace {

// /proc and wait-status helpers shared with the demo and the benchmark.
using tools::ParentOf;
using tools::ProcState;
using tools::ReadFile;

constexpr int kReadyTimeoutMs = 10'000;
constexpr int kCriuTimeoutMs = 120'000;
constexpr int kVerdictTimeoutMs = 10'000;
constexpr int kGoneTimeoutMs = 10'000;
constexpr int kPollMs = 10;
constexpr int kTailLines = 40;

// Pids to kill if Bazel's SIGTERM (a timeout) ends the test first.
constexpr int kMaxTracked = 64;
volatile pid_t g_tracked[kMaxTracked];

void Track(pid_t pid) {
  for (auto& slot : g_tracked) {
    if (slot == 0) {
      slot = pid;
      return;
    }
  }
}

void Untrack(pid_t pid) {
  for (auto& slot : g_tracked) {
    if (slot == pid) slot = 0;
  }
}

void OnTerm(int sig) {
  for (auto& slot : g_tracked) {
    if (slot > 0) kill(slot, SIGKILL);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void InitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // A task `criu restore -d` leaves behind becomes our child.
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    signal(SIGCHLD, SIG_DFL);
    struct sigaction sa = {};
    sa.sa_handler = OnTerm;
    sigaction(SIGTERM, &sa, nullptr);
  });
}

void SleepMs(int ms) { usleep(static_cast<useconds_t>(ms) * 1000); }

std::string Tail(const std::string& path, int lines) {
  std::string text = ReadFile(path);
  std::vector<absl::string_view> all = absl::StrSplit(text, '\n');
  if (!all.empty() && all.back().empty()) all.pop_back();
  if (all.size() <= static_cast<size_t>(lines)) return text;
  return absl::StrCat("[...]\n", absl::StrJoin(all.end() - lines, all.end(), "\n"), "\n");
}

// Forks and execs ARGV with stdin from /dev/null and stdout/stderr appended to
// files; closes every other fd, resets signal dispositions and the mask.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err,
            bool new_session, const std::vector<std::string>& extra_env) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigset_t none;
  sigemptyset(&none);

  pid_t pid = fork();
  if (pid != 0) return pid;
  // The child: async-signal-safe calls only.
  int in_fd = open("/dev/null", O_RDONLY);
  int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) _exit(127);
  dup2(in_fd, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  if (new_session) setsid();
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  syscall(SYS_close_range, 3, ~0U, 0);
  execve(args[0], args.data(), envp.data());
  _exit(127);
}

// Waits up to TIMEOUT_MS for our child PID to exit; returns its wait status.
absl::StatusOr<int> WaitExit(pid_t pid, int timeout_ms) {
  for (int waited = 0;; waited += kPollMs) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return absl::InternalError(absl::StrCat("waitpid(", pid, "): ", strerror(errno)));
    if (waited >= timeout_ms) {
      return absl::DeadlineExceededError(
          absl::StrCat("pid ", pid, " did not exit within ", timeout_ms, " ms"));
    }
    SleepMs(kPollMs);
  }
}

// "state 'S'", or "gone" when PID does not exist.
std::string StateOf(pid_t pid) {
  const char state = ProcState(pid);
  return state == 0 ? "gone" : absl::StrCat("state '", std::string(1, state), "'");
}

long VoluntarySwitches(pid_t pid) {
  std::string status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&line, "voluntary_ctxt_switches:")) {
      long n = -1;
      return absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &n) ? n : -1;
    }
  }
  return -1;
}

// Complete lines of the report that are verdicts ("OK ..." / "FAIL ...").
std::vector<std::string> VerdictLines(const std::string& report) {
  std::string text = ReadFile(report);
  std::vector<std::string> verdicts;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string line = text.substr(start, nl - start);
    if (line == "OK" || absl::StartsWith(line, "OK ") || absl::StartsWith(line, "FAIL")) {
      verdicts.push_back(line);
    }
  }
  return verdicts;
}

bool HasLine(const std::string& path, const std::string& line) {
  std::string text = "\n" + ReadFile(path);
  return absl::StrContains(text, "\n" + line + "\n");
}

// Kills and reaps every child we still have: whatever criu left behind.
// They are unreaped children, so their pids cannot have been reused.
void KillChildren() {
  for (pid_t pid : Children()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    Untrack(pid);
  }
}

}  // namespace

std::vector<pid_t> Children() {
  std::vector<pid_t> children;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return children;
  while (struct dirent* e = readdir(proc)) {
    int pid = 0;
    if (absl::SimpleAtoi(e->d_name, &pid) && ParentOf(pid) == getpid()) children.push_back(pid);
  }
  closedir(proc);
  return children;
}

absl::StatusOr<std::string> OutsideView(pid_t pid) {
  const std::string maps = ReadFile(absl::StrCat("/proc/", pid, "/maps"));
  const std::string status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  if (maps.empty() || status.empty()) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, ": no /proc/", pid, "/maps or status"));
  }
  std::string view = maps;
  // The open files: "fd N -> TARGET" (pipes and sockets name their inode).
  std::vector<int> fds;
  std::error_code ec;
  const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  for (const auto& e : std::filesystem::directory_iterator(fd_dir, ec)) {
    int fd = -1;
    if (absl::SimpleAtoi(e.path().filename().string(), &fd)) fds.push_back(fd);
  }
  std::sort(fds.begin(), fds.end());
  for (int fd : fds) {
    auto target = std::filesystem::read_symlink(absl::StrCat(fd_dir, "/", fd), ec);
    absl::StrAppend(&view, "fd ", fd, " -> ", ec ? "?" : target.string(), "\n");
  }
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    for (absl::string_view key :
         {"SigPnd:", "ShdPnd:", "SigBlk:", "SigIgn:", "SigCgt:", "TracerPid:", "Threads:"}) {
      if (absl::StartsWith(line, key)) absl::StrAppend(&view, line, "\n");
    }
  }
  // Each thread: its own pending and blocked signals.
  std::vector<int> tids;
  for (const auto& e :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    int tid = -1;
    if (absl::SimpleAtoi(e.path().filename().string(), &tid)) tids.push_back(tid);
  }
  std::sort(tids.begin(), tids.end());
  for (int tid : tids) {
    const std::string thread = ReadFile(absl::StrCat("/proc/", pid, "/task/", tid, "/status"));
    for (absl::string_view line : absl::StrSplit(thread, '\n')) {
      if (absl::StartsWith(line, "SigPnd:") || absl::StartsWith(line, "SigBlk:")) {
        absl::StrAppend(&view, "thread ", tid, " ", line, "\n");
      }
    }
  }
  return view;
}

absl::Status ExpectOutsideView(pid_t pid, const std::string& before) {
  absl::StatusOr<std::string> now = OutsideView(pid);
  if (!now.ok()) return now.status();
  if (*now == before) return absl::OkStatus();
  std::vector<absl::string_view> a = absl::StrSplit(before, '\n');
  std::vector<absl::string_view> b = absl::StrSplit(*now, '\n');
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return absl::FailedPreconditionError(
      absl::StrCat("pid ", pid, " changed as seen from outside: line ", i + 1, " was '",
                   i < a.size() ? a[i] : "(none)", "', is now '", i < b.size() ? b[i] : "(none)",
                   "'\n---- before\n", before, "---- now\n", *now));
}

std::string Runfile(const std::string& path) {
  std::string root;
  if (const char* srcdir = getenv("TEST_SRCDIR")) {
    root = srcdir;
  } else if (const char* runfiles = getenv("RUNFILES_DIR")) {
    root = runfiles;
  } else {
    root = std::filesystem::read_symlink("/proc/self/exe").string() + ".runfiles";
  }
  const char* workspace = getenv("TEST_WORKSPACE");
  return absl::StrCat(root, "/", workspace != nullptr ? workspace : "crpp", "/", path);
}

std::string CriuBinary() {
  const char* criu = getenv("CRPP_E2E_CRIU");
  return criu != nullptr && *criu != '\0' ? criu : Runfile("tools/criu/criu");
}

Session::Session(const std::string& name, const std::string& program, SessionOptions options)
    : name_(name), program_(program), options_(std::move(options)) {
  InitOnce();
  const char* tmp = getenv("TEST_TMPDIR");
  dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
  out_dir_ = dir_ + "/out";
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  std::filesystem::create_directories(out_dir_, ec);
}

Session::~Session() {
  if (pid_ > 0 && is_child_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  } else if (pid_ > 0 && ProcState(pid_) != 0) {
    // Alive but not our child: kill it only if it runs our program.
    std::error_code ec;
    auto exe = std::filesystem::read_symlink(absl::StrCat("/proc/", pid_, "/exe"), ec);
    auto ours = std::filesystem::canonical(Runfile("tests/e2e/programs/" + program_), ec);
    if (!exe.empty() && exe == ours) kill(pid_, SIGKILL);
  }
  if (pid_ > 0) Untrack(pid_);
  KillChildren();
}

absl::Status Session::Start() {
  if (pid_ > 0) return absl::FailedPreconditionError("the program was started already");
  const std::string binary = Runfile("tests/e2e/programs/" + program_);
  pid_ = Spawn({binary, out_dir_}, dir_ + "/program.stdout", dir_ + "/program.stderr",
               !options_.shell_job, options_.env);
  if (pid_ < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  is_child_ = true;
  Track(pid_);
  for (int waited = 0; waited < kReadyTimeoutMs; waited += kPollMs) {
    if (HasLine(out_dir_ + "/report", "ready")) return absl::OkStatus();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      is_child_ = false;
      Untrack(pid_);
      return absl::InternalError(absl::StrCat(binary, " (pid ", pid_, ") ended with ",
                                              DescribeWaitStatus(status), " before \"ready\""));
    }
    SleepMs(kPollMs);
  }
  return absl::DeadlineExceededError(
      absl::StrCat(program_, " (pid ", pid_, ") did not report \"ready\" within 10 s"));
}

std::string Session::ImagesDir(int n) const { return absl::StrCat(dir_, "/images-", n); }

absl::StatusOr<Session::CriuRun> Session::RunCriuAnyway(const std::string& what,
                                                        std::vector<std::string> args) {
  const std::string out = absl::StrCat(dir_, "/criu-", ++criu_runs_, "-", what, ".out");
  args.insert(args.begin(), CriuBinary());
  const std::string command = absl::StrCat("$ ", absl::StrJoin(args, " "), "\n");
  std::ofstream(out) << command;
  pid_t pid = Spawn(args, out, out, /*new_session=*/false, {});
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  Track(pid);
  absl::StatusOr<int> status = WaitExit(pid, kCriuTimeoutMs);
  if (!status.ok()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    Untrack(pid);
    return absl::DeadlineExceededError(
        absl::StrCat("criu ", what, " did not finish within ", kCriuTimeoutMs / 1000, " s"));
  }
  Untrack(pid);
  CriuRun run;
  run.wait_status = *status;
  run.output = ReadFile(out);
  if (absl::StartsWith(run.output, command)) run.output.erase(0, command.size());
  return run;
}

absl::StatusOr<int> Session::RunCriu(const std::string& what, std::vector<std::string> args) {
  absl::StatusOr<CriuRun> run = RunCriuAnyway(what, std::move(args));
  if (!run.ok()) return run.status();
  const int status = run->wait_status;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::StripAsciiWhitespace(run->output), '\n');
    if (lines.size() > 3) lines.erase(lines.begin(), lines.end() - 3);
    return absl::InternalError(absl::StrCat("criu ", what, " ended with ",
                                            DescribeWaitStatus(status), ": ",
                                            absl::StrJoin(lines, "\n")));
  }
  return status;
}

namespace {

// The program's children, killed by the dump with it, end up as our
// children (we are a child subreaper): reap them, so that their pids are
// free for the restore.
void ReapOrphans() {
  for (int round = 0, idle = 0; round < 50 && idle < 3; ++round) {
    int reaped = 0;
    int status;
    while (waitpid(-1, &status, WNOHANG) > 0) ++reaped;
    idle = reaped == 0 ? idle + 1 : 0;
    usleep(20000);
  }
}

}  // namespace

absl::Status Session::Dump(const std::vector<std::string>& args) {
  if (pid_ <= 0) return absl::FailedPreconditionError("no program to dump");
  const std::string images = ImagesDir(++dumps_);
  std::error_code ec;
  std::filesystem::create_directories(images, ec);
  std::vector<std::string> argv = {"dump", "-t", absl::StrCat(pid_), "-D", images,
                                   "-v4",  "-o", "dump.log"};
  if (options_.shell_job) argv.push_back("--shell-job");
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<int> status = RunCriu("dump", argv);
  if (!status.ok()) return status.status();

  const bool kept = std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a == "-R" || a == "--leave-running" || a == "-s" || a == "--leave-stopped";
  });
  if (kept) return absl::OkStatus();
  if (is_child_) {
    absl::StatusOr<int> gone = WaitExit(pid_, kGoneTimeoutMs);
    if (!gone.ok()) {
      return absl::InternalError(absl::StrCat("criu dump succeeded but pid ", pid_,
                                              " still lives 10 s later (", StateOf(pid_), ")"));
    }
    is_child_ = false;
    Untrack(pid_);
    std::ofstream(dir_ + "/program.stderr", std::ios::app)
        << "[harness] after dump, pid " << pid_ << " ended with " << DescribeWaitStatus(*gone)
        << "\n";
    ReapOrphans();
    return absl::OkStatus();
  }
  for (int waited = 0; ProcState(pid_) != 0; waited += kPollMs) {
    if (waited >= kGoneTimeoutMs) {
      return absl::InternalError(
          absl::StrCat("criu dump succeeded but pid ", pid_, " still lives 10 s later"));
    }
    SleepMs(kPollMs);
  }
  return absl::OkStatus();
}

absl::Status Session::Restore(const std::vector<std::string>& args) {
  if (dumps_ == 0) return absl::FailedPreconditionError("nothing was dumped");
  if (ProcState(pid_) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", pid_, " is still in use: the original still exists"));
  }
  const std::string images = ImagesDir(dumps_);
  const std::string pidfile = images + "/pid";
  unlink(pidfile.c_str());
  std::vector<std::string> argv = {"restore", "-D",  images, "-d",         "--pidfile",
                                   pidfile,   "-v4", "-o",   "restore.log"};
  if (options_.shell_job) argv.push_back("--shell-job");
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<int> status = RunCriu("restore", argv);
  if (!status.ok()) return status.status();

  std::string text(absl::StripAsciiWhitespace(ReadFile(pidfile)));
  int restored = 0;
  if (!absl::SimpleAtoi(text, &restored) || restored <= 0) {
    return absl::InternalError(
        absl::StrCat("criu restore succeeded but the pidfile ", pidfile, " holds '", text, "'"));
  }
  const pid_t dumped = pid_;
  pid_ = restored;
  Track(pid_);
  is_child_ = ParentOf(pid_) == getpid();
  if (restored != dumped) {
    return absl::InternalError(
        absl::StrCat("restored as pid ", restored, " but the dumped pid was ", dumped));
  }
  if (ProcState(pid_) == 0) {
    return absl::InternalError(absl::StrCat("restored pid ", pid_, " does not exist"));
  }
  return absl::OkStatus();
}

absl::Status Session::Signal(int sig) {
  if (pid_ <= 0 || kill(pid_, sig) != 0) {
    const int err = pid_ <= 0 ? ESRCH : errno;
    return absl::InternalError(
        absl::StrCat("kill(", pid_, ", ", strsignal(sig), "): ", strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status Session::ExpectRunning() {
  const char state = ProcState(pid_);
  if (state == 0 || state == 'Z' || state == 'X' || state == 'T' || state == 't') {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", pid_, " is not running (", StateOf(pid_), ")"));
  }
  const long before = VoluntarySwitches(pid_);
  SleepMs(200);
  const long after = VoluntarySwitches(pid_);
  if (before < 0 || after < before + 3) {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", pid_, " does not advance: voluntary context switches ", before, " -> ",
                     after, " in 200 ms (", StateOf(pid_), ")"));
  }
  return absl::OkStatus();
}

absl::Status Session::ExpectStopped() {
  const char state = ProcState(pid_);
  if (state != 'T') {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", pid_, " is not stopped ('T'): ", StateOf(pid_)));
  }
  const long before = VoluntarySwitches(pid_);
  SleepMs(200);
  const long after = VoluntarySwitches(pid_);
  if (after != before || ProcState(pid_) != 'T') {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", pid_, " is not stopped: switches ", before, " -> ", after));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Session::VerdictLine() {
  if (absl::Status s = Signal(SIGUSR1); !s.ok()) return s;
  const std::string report = out_dir_ + "/report";
  std::string line;
  std::optional<int> exited;  // the child's wait status, if it was reaped here
  for (int waited = 0;; waited += kPollMs) {
    std::vector<std::string> verdicts = VerdictLines(report);
    if (static_cast<int>(verdicts.size()) > verdicts_seen_) {
      line = verdicts[verdicts_seen_];
      break;
    }
    int status = 0;
    if (is_child_ && waitpid(pid_, &status, WNOHANG) == pid_) {
      is_child_ = false;
      Untrack(pid_);
      // It may have written its verdict and exited since the report was read.
      verdicts = VerdictLines(report);
      if (static_cast<int>(verdicts.size()) > verdicts_seen_) {
        line = verdicts[verdicts_seen_];
        exited = status;
        break;
      }
      return absl::InternalError(absl::StrCat("pid ", pid_, " ended with ",
                                              DescribeWaitStatus(status), " without a verdict"));
    }
    if (waited >= kVerdictTimeoutMs) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no verdict from pid ", pid_, " within 10 s of SIGUSR1 (", StateOf(pid_), ")"));
    }
    SleepMs(kPollMs);
  }
  ++verdicts_seen_;
  last_verdict_ = line;
  const bool ok = absl::StartsWith(line, "OK");
  if (!is_child_ && !exited) {
    for (int waited = 0; ProcState(pid_) != 0 && ProcState(pid_) != 'Z'; waited += kPollMs) {
      if (waited >= kGoneTimeoutMs) {
        return absl::InternalError(absl::StrCat("pid ", pid_, " lives on after its verdict"));
      }
      SleepMs(kPollMs);
    }
    return line;
  }
  absl::StatusOr<int> status = exited ? *exited : WaitExit(pid_, kGoneTimeoutMs);
  if (!status.ok()) return status.status();
  is_child_ = false;
  Untrack(pid_);
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != (ok ? 0 : 1)) {
    return absl::InternalError(absl::StrCat("verdict '", line, "' but the program ended with ",
                                            DescribeWaitStatus(*status)));
  }
  return line;
}

absl::Status Session::Verdict() {
  absl::StatusOr<std::string> line = VerdictLine();
  if (!line.ok()) return line.status();
  if (!absl::StartsWith(*line, "OK")) {
    return absl::InternalError(absl::StrCat(program_, " says: ", *line));
  }
  return absl::OkStatus();
}

std::string Session::Diagnostics() const {
  std::string out = absl::StrCat("==== diagnostics of ", name_, " (", program_, ", pid ", pid_,
                                 ", ", StateOf(pid_), ") in ", dir_, "\n");
  auto add = [&out](const std::string& path) {
    if (access(path.c_str(), R_OK) != 0) return;
    absl::StrAppend(&out, "---- ", path, " (last ", kTailLines, " lines)\n", Tail(path, kTailLines),
                    "\n");
  };
  add(out_dir_ + "/report");
  add(dir_ + "/program.stderr");
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    files.push_back(e.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    if (absl::StartsWith(f, "criu-")) add(dir_ + "/" + f);
  }
  for (int n = 1; n <= dumps_; ++n) {
    add(ImagesDir(n) + "/dump.log");
    add(ImagesDir(n) + "/restore.log");
  }
  return out;
}

}  // namespace crpp::e2e
