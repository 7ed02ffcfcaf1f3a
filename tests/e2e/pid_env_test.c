// What the end-to-end tests need from the place Bazel runs them in, checked
// there: a restore must give each task its old pid, which takes clone3 with
// set_tid (CAP_CHECKPOINT_RESTORE over the owner of the pid namespace), and
// criu reads tasks through /proc and ptrace. Prints what it finds, so the log
// of a failing e2e test can be compared with this one.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures = 0;

static void Fail(const char* what) {
  printf("FAIL: %s (errno %d: %s)\n", what, errno, strerror(errno));
  ++failures;
}

// Prints the lines of FILE that start with PREFIX (all lines if PREFIX is "").
static void Show(const char* file, const char* prefix) {
  FILE* f = fopen(file, "r");
  if (f == NULL) {
    printf("info: %s: %s\n", file, strerror(errno));
    return;
  }
  char line[512];
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, prefix, strlen(prefix)) == 0) printf("info: %s: %s", file, line);
  }
  fclose(f);
}

// /proc must be the one of our pid namespace, or criu would look at others.
static void CheckProc(void) {
  char buf[64] = {0};
  if (readlink("/proc/self", buf, sizeof(buf) - 1) < 0) {
    Fail("readlink /proc/self");
  } else if (atoi(buf) != getpid()) {
    printf("FAIL: /proc/self is %s but getpid() is %d\n", buf, getpid());
    ++failures;
  }
}

// A pid that was just used and is free again: what a restore asks for.
static pid_t FreedPid(void) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, NULL, 0);
  return pid;
}

static void CheckSetTid(void) {
  pid_t want = FreedPid();
  struct clone_args args;
  memset(&args, 0, sizeof(args));
  args.exit_signal = SIGCHLD;
  args.set_tid = (unsigned long)&want;
  args.set_tid_size = 1;
  long got = syscall(SYS_clone3, &args, sizeof(args));
  if (got == 0) _exit(getpid() == want ? 0 : 1);
  if (got < 0) {
    Fail("clone3 with set_tid");
    return;
  }
  int status = 0;
  waitpid((pid_t)got, &status, 0);
  if (got != want || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("FAIL: clone3 set_tid asked for %d, got %ld\n", want, got);
    ++failures;
  } else {
    printf("info: clone3 set_tid gave the freed pid %d\n", want);
  }
}

// map_files is how criu reaches the files behind mappings; the kernel wants
// CAP_CHECKPOINT_RESTORE in the initial user namespace to follow its links.
// Only reported: it says whether a test runs as the host's root.
static void ReportMapFiles(pid_t pid) {
  char maps[64];
  snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
  FILE* f = fopen(maps, "r");
  unsigned long start = 0;
  unsigned long end = 0;
  if (f == NULL || fscanf(f, "%lx-%lx", &start, &end) != 2) {
    Fail("read /proc/PID/maps");
    if (f != NULL) fclose(f);
    return;
  }
  fclose(f);
  char link[96];
  char target[256];
  snprintf(link, sizeof(link), "/proc/%d/map_files/%lx-%lx", pid, start, end);
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  printf("info: readlink %s: %s\n", link, n < 0 ? strerror(errno) : "ok");
  int fd = open(link, O_RDONLY);
  printf("info: open %s: %s\n", link, fd < 0 ? strerror(errno) : "ok");
  if (fd >= 0) close(fd);
}

static void CheckPtrace(void) {
  pid_t child = fork();
  if (child == 0) {
    for (;;) pause();
  }
  if (ptrace(PTRACE_SEIZE, child, 0, 0) != 0) {
    Fail("PTRACE_SEIZE");
  } else if (ptrace(PTRACE_INTERRUPT, child, 0, 0) != 0) {
    Fail("PTRACE_INTERRUPT");
  } else {
    int status = 0;
    waitpid(child, &status, __WALL);
    if (!WIFSTOPPED(status)) {
      printf("FAIL: seized child did not stop (status %#x)\n", status);
      ++failures;
    }
  }
  // map_files is how criu names the files behind mappings; only reported.
  char path[64];
  char target[256];
  snprintf(path, sizeof(path), "/proc/%d/exe", child);
  ssize_t n = readlink(path, target, sizeof(target) - 1);
  printf("info: /proc/%d/exe %s\n", child, n < 0 ? strerror(errno) : "readable");
  ReportMapFiles(child);
  kill(child, SIGKILL);
  waitpid(child, NULL, __WALL);
}

int main(void) {
  printf("info: getpid() = %d\n", getpid());
  Show("/proc/self/status", "NSpid");
  Show("/proc/self/status", "CapEff");
  Show("/proc/self/uid_map", "");
  Show("/proc/sys/kernel/ns_last_pid", "");
  CheckProc();
  CheckSetTid();
  CheckPtrace();
  printf("%s\n", failures == 0 ? "PASS" : "FAILED");
  return failures == 0 ? 0 : 1;
}
