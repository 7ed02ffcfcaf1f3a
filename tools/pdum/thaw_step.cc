// The thaw half: restoring a frozen job here, and waiting for it.
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_format.h"
#include "tools/pdum/console.h"
#include "tools/pdum/steps.h"

namespace crpp::pdum {
namespace {

// The first of fds 0-2 on a terminal: the one the engine makes a shell
// job's terminal (core/restore/restore_task.cc), or -1.
int OurTerminal() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (isatty(fd)) return fd;
  }
  return -1;
}

// A fresh DIR/restore.XXXXXX.log, so that thawing the same images twice
// keeps both logs.
std::string NewRestoreLog(const std::string& dir) {
  std::string path = dir + "/restore.XXXXXX.log";
  int fd = mkstemps(path.data(), 4);
  if (fd < 0) return dir + "/restore.log";
  close(fd);
  return path;
}

// While WaitForJob waits: the job's pidfd, for the signal handler.
volatile int g_job_pidfd = -1;

void PassOn(int sig) {
  if (g_job_pidfd >= 0) syscall(SYS_pidfd_send_signal, g_job_pidfd, sig, nullptr, 0);
}

}  // namespace

Thawing RunThaw(const ThawStep& step, const std::string& what) {
  Thawing t;
  auto frozen = ReadFrozenJob(step.dir);
  if (!frozen.ok()) {
    t.exit_code = Failed(what, frozen.status(),
                         absl::StrFormat("%s must hold the images shell freeze (or criu dump) "
                                         "wrote",
                                         step.dir),
                         "", false);
    return t;
  }
  t.frozen = *frozen;
  auto handover = HandOverStdio(t.frozen, step.stdio_paths);
  if (!handover.ok()) {
    t.exit_code = Failed(what, handover.status(), "", "", false);
    return t;
  }
  if (!t.frozen.terminal.empty() && OurTerminal() < 0) {
    t.exit_code = Failed(
        what,
        absl::FailedPreconditionError(absl::StrFormat(
            "pid %d was a job of the terminal %s, and this thaw runs on no terminal to give it",
            t.frozen.pid, t.frozen.terminal)),
        "run the thaw in a terminal (it becomes the job's terminal)", "", false);
    return t;
  }
  t.log_path = step.log_path.empty() ? NewRestoreLog(step.dir) : step.log_path;
  const std::string pidfile = Absolute(step.pidfile);

  printf("Thawing pid %d from %s\n", t.frozen.pid, step.dir.c_str());
  for (const std::string& line : (*handover)->described) printf("  %s\n", line.c_str());
  if (!t.frozen.terminal.empty()) {
    printf("  terminal (%s) <- thaw's terminal\n", t.frozen.terminal.c_str());
  }
  if (step.show_command) {
    std::vector<std::string> criu = {"criu",
                                     "restore",
                                     "-D",
                                     step.dir,
                                     "-o",
                                     t.log_path,
                                     absl::StrFormat("-v%d", step.verbosity)};
    if (t.frozen.shell_job()) criu.push_back("--shell-job");
    if (step.detach) criu.push_back("-d");
    if (!pidfile.empty()) criu.insert(criu.end(), {"--pidfile", pidfile});
    criu.insert(criu.end(), (*handover)->criu_args.begin(), (*handover)->criu_args.end());
    std::string line = ShellJoin(criu);
    for (const std::string& r : (*handover)->redirections) line += " " + r;
    printf("$ %s\n", line.c_str());
  }
  fflush(stdout);
  auto thawed = Thaw(step.dir, {.shell_job = t.frozen.shell_job(),
                                .detach = step.detach,
                                .pidfile = pidfile,
                                .new_stdio = false,
                                .inherit_fds = (*handover)->inherit,
                                .log_path = t.log_path,
                                .verbosity = step.verbosity});
  handover->reset();  // the job has its copies
  if (!thawed.ok()) {
    std::string hint;
    if (thawed.status().code() == absl::StatusCode::kAlreadyExists) {
      hint = absl::StrFormat(
          "pid %d still runs (a freeze with --leave-running leaves it): end it first "
          "(kill %d), then thaw again",
          t.frozen.pid, t.frozen.pid);
    } else if (thawed.status().code() == absl::StatusCode::kPermissionDenied) {
      hint = "pdum-criu doctor lists what this process lacks.";
    }
    t.exit_code = Failed(what, thawed.status(), hint, t.log_path, step.show_tail);
    return t;
  }
  t.job = *std::move(thawed);
  printf("Thawed: pid %d%s\nLog: %s\n", t.job->pid(),
         step.detach ? " (detached: it is no child of pdum-criu)" : "", t.log_path.c_str());
  fflush(stdout);
  return t;
}

int WaitForJob(Thawing& t) {
  const pid_t pid = t.job->pid();
  const int tty = OurTerminal();
  const pid_t job_group = getpgid(pid);
  const bool own_group = job_group > 0 && job_group != getpgrp();
  // A terminal job comes to the foreground, as `fg` brings it, whenever we
  // have the foreground ourselves.
  const bool terminal_job = !t.frozen.terminal.empty() && tty >= 0 && own_group;
  bool handed = false;
  auto hand_over = [&] {
    if (terminal_job && tcgetpgrp(tty) == getpgrp()) handed = tcsetpgrp(tty, job_group) == 0;
  };
  auto take_back = [&] {
    if (handed) tcsetpgrp(tty, getpgrp());
    handed = false;
  };
  // We give the terminal away, and take it back from the background.
  struct sigaction ignore = {}, pass = {}, old_ttou, old[4];
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGTTOU, &ignore, &old_ttou);
  hand_over();
  // What would end us is passed on to the job, unless it shares our
  // process group: the terminal's Ctrl-C and Ctrl-\ reach it then anyway.
  g_job_pidfd = t.job->completion_fd();
  pass.sa_handler = PassOn;
  pass.sa_flags = SA_RESTART;
  const int kSignals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP};
  for (int i = 0; i < 4; ++i) {
    const bool from_terminal = kSignals[i] == SIGINT || kSignals[i] == SIGQUIT;
    sigaction(kSignals[i], from_terminal && !own_group ? &ignore : &pass, &old[i]);
  }
  int status = 0, code = 0, stuck = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, terminal_job ? WUNTRACED : 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      fprintf(stderr, "waiting for pid %d: %s\n", pid, strerror(errno));
      code = kFailureExit;
      break;
    }
    if (WIFSTOPPED(status)) {
      const int sig = WSTOPSIG(status);
      const bool wants_terminal = sig == SIGTTIN || sig == SIGTTOU;
      if (!(handed && wants_terminal)) {
        // Ctrl-Z, or it needs the terminal we do not have: we stop too, as
        // sudo and ssh do, and our shell's fg or bg goes on with both. The
        // kernel ignores the SIGTSTP when no shell could continue us.
        take_back();
        printf("pid %d stopped (%s)\n", pid, strsignal(sig));
        fflush(stdout);
        raise(SIGTSTP);
        hand_over();
      }
      // Else it touched the terminal before it was handed over.
      stuck = wants_terminal && !handed ? stuck + 1 : 0;
      if (stuck > 3) {
        fprintf(stderr,
                "pid %d needs the terminal and thaw cannot give it (not in the foreground): it "
                "stays stopped; kill -CONT %d resumes it\n",
                pid, pid);
        code = 128 + sig;
        break;
      }
      kill(-job_group, SIGCONT);
      continue;
    }
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (WIFEXITED(status)) {
      printf("pid %d exited with status %d\n", pid, code);
    } else {
      printf("pid %d was killed by signal %d (%s)\n", pid, WTERMSIG(status),
             strsignal(WTERMSIG(status)));
    }
    break;
  }
  take_back();
  sigaction(SIGTTOU, &old_ttou, nullptr);
  for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &old[i], nullptr);
  g_job_pidfd = -1;
  fflush(stdout);
  return code;
}

}  // namespace crpp::pdum
