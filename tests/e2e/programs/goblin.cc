// goblin: a process whose stdio are pipes. For every line it reads on stdin
// it writes "N:LINE IN UPPER CASE" to stdout and "count N" to stderr, N
// counting from 1 across its whole life (a checkpoint included). Ends at
// EOF. Run by tests that give it new pipes at restore (--inherit-fd).
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <string>

namespace {

void WriteAll(int fd, const std::string& s) {
  for (size_t off = 0; off < s.size();) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) _exit(3);
    off += static_cast<size_t>(n);
  }
}

}  // namespace

int main() {
  unsigned long count = 0;
  std::string line;
  char c;
  while (read(STDIN_FILENO, &c, 1) == 1) {
    if (c != '\n') {
      line += static_cast<char>(toupper(static_cast<unsigned char>(c)));
      continue;
    }
    ++count;
    WriteAll(STDOUT_FILENO, std::to_string(count) + ":" + line + "\n");
    WriteAll(STDERR_FILENO, "count " + std::to_string(count) + "\n");
    line.clear();
  }
  return 0;
}
