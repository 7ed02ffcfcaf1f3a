// goblin_jobs: a program that freezes and thaws a job through the library
// (api/criu.h), with a resource plugin of its own (example_resource.h).
//
//   goblin_jobs GOBLIN DIR [CYCLES] [--detach]
//
// It starts GOBLIN (a program that answers each line on stdin with
// "N:LINE IN UPPER CASE" on stdout and "count N" on stderr) on three pipes,
// feeds it a line, then CYCLES times (1 by default): freezes it into
// DIR/cycle-K (killing it), thaws it on new pipes (--detach: as no child of
// ours) and feeds it another line, checking that the count goes on. At the
// end it closes the goblin's stdin and waits for it to exit. Prints one line
// per cycle and "OK" (exit 0), or what went wrong (exit 1).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "api/criu.h"
#include "examples/goblin_jobs/example_resource.h"

namespace {

using Clock = std::chrono::steady_clock;

// The default set plus ours: what Freeze and Thaw run.
const crpp::Engine<crpp::DefaultResources::With<goblin_jobs::ExampleResource>> kResources;

[[noreturn]] void Fail(const std::string& why) {
  printf("FAIL %s\n", why.c_str());
  exit(1);
}

double Ms(Clock::time_point from) {
  return std::chrono::duration<double, std::milli>(Clock::now() - from).count();
}

// One line from `fd`, waiting up to 5 s.
std::string ReadLine(int fd) {
  std::string line;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char c;
    if (read(fd, &c, 1) != 1) break;
    if (c == '\n') return line;
    line += c;
  }
  return line + "(no answer)";
}

// Feeds `line` and checks the goblin's answer: its n-th line.
void Talk(int in, int out, int err, const std::string& line, int n) {
  const std::string text = line + "\n";
  if (write(in, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    Fail("writing to the goblin: " + std::string(strerror(errno)));
  }
  std::string upper = line;
  for (char& c : upper) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  const std::string want_out = std::to_string(n) + ":" + upper;
  const std::string want_err = "count " + std::to_string(n);
  const std::string got_out = ReadLine(out), got_err = ReadLine(err);
  if (got_out != want_out || got_err != want_err) {
    Fail("the goblin answered '" + got_out + "' / '" + got_err + "', not '" + want_out + "' / '" +
         want_err + "'");
  }
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s GOBLIN DIR [CYCLES] [--detach]\n", argv[0]);
    return 2;
  }
  const std::string goblin = argv[1], dir = argv[2];
  int cycles = 1;
  bool detach = false;
  for (int i = 3; i < argc; ++i) {
    if (std::string(argv[i]) == "--detach") {
      detach = true;
    } else {
      cycles = atoi(argv[i]);
    }
  }

  // The goblin on three pipes of ours, in a session of its own.
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) Fail("pipe");
  pid_t pid = fork();
  if (pid < 0) Fail("fork");
  if (pid == 0) {
    setsid();  // a session of its own: nothing outside the frozen tree
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execl(goblin.c_str(), goblin.c_str(), nullptr);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  int job_in = in[1], job_out = out[0], job_err = err[0];
  Talk(job_in, job_out, job_err, "hello", 1);
  printf("goblin %d started, answers\n", pid);

  std::unique_ptr<crpp::Thawed> job;  // the thawed goblin (none before the first thaw)
  for (int k = 1; k <= cycles; ++k) {
    const std::string images = dir + "/cycle-" + std::to_string(k);
    mkdir(images.c_str(), 0700);
    auto t0 = Clock::now();
    auto frozen = crpp::Freeze(pid, images, {.leave_running = false, .resources = &kResources});
    if (!frozen.ok()) Fail("Freeze: " + std::string(frozen.status().message()));
    const double freeze_ms = Ms(t0);
    // Frozen and killed (and reaped by Freeze, its tracer): the old pipes go.
    if (job) {
      job.reset();
    } else {
      close(job_in);
      close(job_out);
      close(job_err);
    }
    t0 = Clock::now();
    auto thawed = crpp::Thaw(images, {.detach = detach, .resources = &kResources});
    if (!thawed.ok()) Fail("Thaw: " + std::string(thawed.status().message()));
    const double thaw_ms = Ms(t0);
    job = *std::move(thawed);
    if (job->pid() != pid) Fail("thawed as pid " + std::to_string(job->pid()));
    job_in = job->stdin_fd();
    job_out = job->stdout_fd();
    job_err = job->stderr_fd();
    if (job_in < 0 || job_out < 0 || job_err < 0) Fail("no new stdio pipes");
    Talk(job_in, job_out, job_err, "cycle " + std::to_string(k), k + 1);
    const std::string notes = Slurp(goblin_jobs::NotesPath(frozen->images_dir));
    const std::string want =
        "dumped " + std::to_string(pid) + "\nrestored " + std::to_string(pid) + "\n";
    if (notes != want) Fail("the example resource wrote '" + notes + "', not '" + want + "'");
    printf(
        "cycle %d: frozen in %.1f ms, thawed in %.1f ms, pid %d, count %d, example resource: "
        "dumped and restored\n",
        k, freeze_ms, thaw_ms, pid, k + 1);
  }
  if (!job) Fail("nothing thawed");
  // End of input: the goblin exits 0.
  close(job->TakeStdio(0));
  pollfd p = {job->completion_fd(), POLLIN, 0};
  if (poll(&p, 1, 5000) != 1) Fail("the goblin did not end at the end of its input");
  auto code = job->Wait();
  if (!code.ok()) Fail("Wait: " + std::string(code.status().message()));
  if (*code != (detach ? -1 : 0)) Fail("the goblin exited with " + std::to_string(*code));
  printf("OK %d cycles\n", cycles);
  return 0;
}
