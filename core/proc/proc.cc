#include "core/proc/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "absl/strings/str_format.h"
#include "core/strings.h"

namespace crpp::proc {
namespace {

absl::Status Bad(const std::string& path, std::string_view what) {
  return absl::DataLossError(absl::StrFormat("%s: %s", path, std::string(what)));
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT
               ? absl::NotFoundError(absl::StrFormat("%s: %s", path, strerror(errno)))
               : absl::PermissionDeniedError(absl::StrFormat("%s: %s", path, strerror(errno)));
  }
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return absl::InternalError(absl::StrFormat("%s: read: %s", path, strerror(e)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::StatusOr<std::vector<Vma>> ReadMaps(pid_t pid, bool with_flags) {
  // smaps carries VmFlags (gd = grows down) on top of what maps says.
  std::string path = absl::StrFormat(with_flags ? "/proc/%d/smaps" : "/proc/%d/maps", pid);
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<Vma> out;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("VmFlags:", 0) == 0) {
      if (!out.empty()) out.back().growsdown = line.find(" gd") != std::string::npos;
      continue;
    }
    // Header lines start with a hex range "start-end"; others are "Key: value".
    size_t dash = line.find('-');
    size_t space = line.find(' ');
    if (dash == std::string::npos || space == std::string::npos || dash > space) continue;
    if (line.find(':') < space) continue;  // "Size:" etc.
    Vma v;
    char perms[5] = {};
    unsigned long long start, end, pgoff, inode;
    unsigned maj, min;
    int consumed = 0;
    if (sscanf(line.c_str(), "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &pgoff, &maj,
               &min, &inode, &consumed) < 7) {
      return Bad(path, "cannot parse line: " + line);
    }
    v.start = start;
    v.end = end;
    v.read = perms[0] == 'r';
    v.write = perms[1] == 'w';
    v.exec = perms[2] == 'x';
    v.shared = perms[3] == 's';
    v.pgoff = pgoff;
    v.dev_major = maj;
    v.dev_minor = min;
    v.inode = inode;
    if (consumed > 0 && static_cast<size_t>(consumed) <= line.size()) {
      v.path = std::string(Trim(std::string_view(line).substr(consumed)));
    }
    constexpr std::string_view kDeleted = " (deleted)";
    if (v.is_file() && std::string_view(v.path).ends_with(kDeleted)) {
      v.deleted = true;
      v.path.resize(v.path.size() - kDeleted.size());
    }
    out.push_back(std::move(v));
  }
  return out;
}

absl::StatusOr<Stat> ReadStat(pid_t pid) {
  std::string path = absl::StrFormat("/proc/%d/stat", pid);
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  // comm may hold spaces and parentheses: it ends at the last ')'.
  size_t open = text->find('('), close = text->rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return Bad(path, "no (comm)");
  }
  Stat s;
  s.comm = text->substr(open + 1, close - open - 1);
  std::vector<std::string_view> f;
  for (std::string_view w : Split(Trim(std::string_view(*text).substr(close + 1)), ' ')) {
    if (!w.empty()) f.push_back(w);
  }
  // f[0] is field 3 (state); field N is f[N - 3].
  if (f.size() < 50) return Bad(path, absl::StrFormat("only %d fields", f.size() + 2));
  auto u64 = [&](int field) {
    uint64_t v = 0;
    ParseInt(f[field - 3], v);
    return v;
  };
  auto i64 = [&](int field) {
    int64_t v = 0;
    ParseInt(f[field - 3], v);
    return v;
  };
  s.state = f[0].empty() ? '?' : f[0][0];
  s.ppid = static_cast<pid_t>(i64(4));
  s.pgid = static_cast<pid_t>(i64(5));
  s.sid = static_cast<pid_t>(i64(6));
  s.tty_nr = static_cast<uint32_t>(u64(7));
  s.tpgid = static_cast<pid_t>(i64(8));
  s.flags = u64(9);
  s.nice = i64(19);
  s.num_threads = u64(20);
  s.start_code = u64(26);
  s.end_code = u64(27);
  s.start_stack = u64(28);
  s.start_data = u64(45);
  s.end_data = u64(46);
  s.start_brk = u64(47);
  s.arg_start = u64(48);
  s.arg_end = u64(49);
  s.env_start = u64(50);
  s.env_end = u64(51);
  s.exit_code = f.size() >= 50 ? i64(52) : 0;
  return s;
}

absl::StatusOr<Status> ReadStatus(pid_t pid) {
  std::string path = absl::StrFormat("/proc/%d/status", pid);
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  Status s;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string_view key = std::string_view(line).substr(0, colon);
    std::string_view val = Trim(std::string_view(line).substr(colon + 1));
    std::vector<std::string_view> words;
    for (std::string_view w : Split(val, '\t')) {
      for (std::string_view x : Split(w, ' ')) {
        if (!x.empty()) words.push_back(x);
      }
    }
    auto hex = [&](uint64_t& out) { ParseInt(val, out, 16); };
    if (key == "Uid" || key == "Gid") {
      if (words.size() != 4) return Bad(path, "bad " + std::string(key) + " line");
      for (int i = 0; i < 4; ++i) ParseInt(words[i], key == "Uid" ? s.uid[i] : s.gid[i]);
    } else if (key == "Groups") {
      for (std::string_view w : words) {
        uint32_t g;
        if (ParseInt(w, g)) s.groups.push_back(g);
      }
    } else if (key == "CapInh") {
      hex(s.cap_inh);
    } else if (key == "CapPrm") {
      hex(s.cap_prm);
    } else if (key == "CapEff") {
      hex(s.cap_eff);
    } else if (key == "CapBnd") {
      hex(s.cap_bnd);
    } else if (key == "CapAmb") {
      hex(s.cap_amb);
    } else if (key == "NoNewPrivs") {
      ParseInt(val, s.no_new_privs);
    } else if (key == "Umask") {
      ParseInt(val, s.umask, 8);
    } else if (key == "Seccomp") {
      ParseInt(val, s.seccomp);
    } else if (key == "Threads") {
      ParseInt(val, s.threads);
    }
  }
  return s;
}

absl::StatusOr<std::vector<uint64_t>> ReadAuxv(pid_t pid) {
  auto text = ReadFile(absl::StrFormat("/proc/%d/auxv", pid));
  if (!text.ok()) return text.status();
  std::vector<uint64_t> words(text->size() / 8);
  memcpy(words.data(), text->data(), words.size() * 8);
  return words;
}

absl::StatusOr<std::string> ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return absl::NotFoundError(absl::StrFormat("%s: %s", path, strerror(errno)));
  return std::string(buf, static_cast<size_t>(n));
}

absl::StatusOr<std::vector<int>> ListFds(pid_t pid) {
  std::string path = absl::StrFormat("/proc/%d/fd", pid);
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrFormat("%s: %s", path, strerror(errno)));
  std::vector<int> fds;
  while (dirent* e = readdir(d)) {
    int fd;
    if (ParseInt(std::string_view(e->d_name), fd)) fds.push_back(fd);
  }
  closedir(d);
  std::sort(fds.begin(), fds.end());
  return fds;
}

absl::StatusOr<FdInfo> ReadFdInfo(pid_t pid, int fd) {
  std::string path = absl::StrFormat("/proc/%d/fdinfo/%d", pid, fd);
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  FdInfo info;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    std::string_view l(line);
    size_t colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = l.substr(0, colon), val = Trim(l.substr(colon + 1));
    if (key == "pos") ParseInt(val, info.pos);
    if (key == "flags") ParseInt(val, info.flags, 8);
    if (key == "mnt_id") ParseInt(val, info.mnt_id);
  }
  return info;
}

absl::StatusOr<std::vector<pid_t>> ListThreads(pid_t pid) {
  std::string dir = absl::StrFormat("/proc/%d/task", pid);
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrFormat("%s: %s", dir, strerror(errno)));
  std::vector<pid_t> out;
  while (dirent* e = readdir(d)) {
    pid_t tid;
    if (e->d_name[0] != '.' && ParseInt(e->d_name, tid)) out.push_back(tid);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<pid_t>> ListChildren(pid_t pid) {
  auto tids = ListThreads(pid);
  if (!tids.ok()) return tids.status();
  std::vector<pid_t> out;
  for (pid_t tid : *tids) {
    auto text = ReadFile(absl::StrFormat("/proc/%d/task/%d/children", pid, tid));
    if (!text.ok()) continue;
    for (std::string_view w : Split(Trim(*text), ' ')) {
      pid_t c;
      if (ParseInt(w, c)) out.push_back(c);
    }
  }
  return out;
}

}  // namespace crpp::proc
