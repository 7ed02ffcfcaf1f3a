#include "tools/pdum/tty_check.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <map>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/proc/proc.h"
#include "core/strings.h"

namespace crpp::pdum {
namespace {

// The majors resources/files treats as terminals: 4 (virtual consoles,
// serial), 5 (/dev/tty, /dev/console, /dev/ptmx), 136-143 (pts).
bool IsTerminalMajor(unsigned maj) { return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143); }
// /dev/tty (5:0): "my controlling terminal", whichever it is.
bool IsDevTty(dev_t d) { return major(d) == 5 && minor(d) == 0; }
// /dev/ptmx (5:2): the pty multiplexer, a master side.
bool IsPtmx(dev_t d) { return major(d) == 5 && minor(d) == 2; }

// The tree, root first, by walking /proc/PID/task/*/children.
std::vector<pid_t> Tree(pid_t root) {
  std::vector<pid_t> out = {root};
  for (size_t i = 0; i < out.size(); ++i) {
    auto kids = proc::ListChildren(out[i]);
    if (kids.ok()) out.insert(out.end(), kids->begin(), kids->end());
  }
  return out;
}

// tty_nr (field 7) of /proc/PID/stat: the controlling terminal's device, 0 if none.
dev_t ControllingTerminal(pid_t pid) {
  auto text = proc::ReadFile(absl::StrFormat("/proc/%d/stat", pid));
  if (!text.ok()) return 0;
  size_t close = text->rfind(')');  // comm may hold spaces and parentheses
  if (close == std::string::npos) return 0;
  std::vector<std::string_view> f = Split(std::string_view(*text).substr(close + 2), ' ');
  // After "comm)": state ppid pgrp session tty_nr ...
  unsigned long long tty = 0;
  if (f.size() < 5 || !ParseInt(f[4], tty)) return 0;
  // The kernel's encoding: minor bits 0-7 and 20-31, major bits 8-19.
  return makedev((tty >> 8) & 0xfff, (tty & 0xff) | ((tty >> 12) & 0xfff00));
}

struct TerminalFd {
  pid_t pid;
  int fd;
  std::string path;
};

TtyVerdict Refuse(std::string why, std::string hint, std::string terminal = "") {
  return {absl::FailedPreconditionError(why), std::move(hint), std::move(terminal)};
}

constexpr char kOverride[] =
    " (--no-validate-tty goes on anyway: every terminal fd then comes back as thaw's terminal.)";

}  // namespace

TtyVerdict CheckJobTerminal(pid_t root) {
  std::map<dev_t, TerminalFd> terminals;  // the slave sides, by device
  for (pid_t pid : Tree(root)) {
    auto fds = proc::ListFds(pid);
    if (!fds.ok()) continue;  // it ended meanwhile: the dump will tell
    for (int fd : *fds) {
      const std::string link = absl::StrFormat("/proc/%d/fd/%d", pid, fd);
      struct stat st;
      if (stat(link.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) continue;
      if (!IsTerminalMajor(major(st.st_rdev))) continue;
      auto path = proc::ReadLink(link);
      const std::string name = path.ok() ? *path : "?";
      if (IsPtmx(st.st_rdev) || name.ends_with("/ptmx")) {
        return Refuse(
            absl::StrFormat("pid %d fd %d is the master side of a pseudo-terminal (%s): the job "
                            "is itself a terminal (tmux, screen, script, an editor's terminal), "
                            "and crpp gives a job back only on the terminal thaw runs on",
                            pid, fd, name),
            absl::StrFormat("freeze the job that runs inside that terminal instead.%s", kOverride));
      }
      if (IsDevTty(st.st_rdev)) continue;  // follows the controlling terminal
      terminals.emplace(st.st_rdev, TerminalFd{pid, fd, name});
    }
  }
  const std::string terminal = terminals.empty() ? "" : terminals.begin()->second.path;
  if (terminals.size() > 1) {
    std::string list;
    for (const auto& [dev, t] : terminals) {
      absl::StrAppendFormat(&list, "%s%s (pid %d fd %d)", list.empty() ? "" : ", ", t.path, t.pid,
                            t.fd);
    }
    return Refuse(
        absl::StrFormat("the job holds %d terminals: %s; thaw gives it back one only",
                        terminals.size(), list),
        absl::StrFormat("run the job on one terminal (redirect the others to files).%s", kOverride),
        terminal);
  }
  auto st = proc::ReadStat(root);
  if (!st.ok()) return {st.status(), "", terminal};
  const dev_t ctty = ControllingTerminal(root);
  if (ctty != 0 && st->sid == root) {
    return Refuse(
        absl::StrFormat("pid %d leads the session of its terminal%s (a login shell, or the "
                        "first program of a terminal window): thaw restores a job as a member of "
                        "thaw's session, never as the leader of a terminal's session",
                        root, terminal.empty() ? "" : " " + terminal),
        absl::StrFormat("freeze a job this shell runs instead (a program started from it).%s",
                        kOverride),
        terminal);
  }
  if (!terminals.empty() && ctty != 0 && terminals.begin()->first != ctty) {
    return Refuse(absl::StrFormat("pid %d has its fds on %s but another controlling terminal "
                                  "(device %d:%d): thaw's terminal would become both",
                                  root, terminal, major(ctty), minor(ctty)),
                  absl::StrFormat("run the job on its controlling terminal.%s", kOverride),
                  terminal);
  }
  return {absl::OkStatus(), "", terminal};
}

}  // namespace crpp::pdum
