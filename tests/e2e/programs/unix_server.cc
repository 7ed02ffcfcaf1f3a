// unix_server: a server with UNIX sockets of every kind the dump supports,
// with data queued everywhere. The root (the server) listens on a stream
// socket at OUTDIR/server.sock (or in /tmp if too long); two children connect to it:
//   client1  accepted; 100000 bytes from the server wait unread in client1's
//            socket and 3000 bytes from client1 in the server's. It also
//            shares a datagram and a seqpacket socketpair with the server,
//            with messages of different sizes queued both ways, and sends
//            two datagrams to the server's datagram socket bound to an
//            abstract name.
//   client2  connected but not accepted: its connection waits in the
//            listening socket's queue.
// The server also holds a stream socketpair of its own: one end O_NONBLOCK
// with SO_PASSCRED and a set SO_SNDBUF, the other wrote "bye" and shut its
// writing side down.
// With CRPP_E2E_UNIX_EXTERNAL=PATH in the environment, the server also
// connects a datagram socket to PATH (a socket outside the tree, dumped
// with --external) and sends "external-after" through it at the verdict.
// Verdict (root, then each child on SIGUSR2): every socket reads exactly
// what was queued in it, in order and with message boundaries, and nothing
// more; options, flags and the shutdown hold; the pending connection is
// accepted and carries data both ways; data flows both ways between the
// server and client1; a new client connects to the listening socket.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/e2e/programs/common.h"

namespace {

using crpp::e2e::Die;
using crpp::e2e::Verdict;

volatile sig_atomic_t g_check = 0;
void OnUsr2(int) { g_check = 1; }

constexpr size_t kToClient = 100000, kToServer = 3000;
constexpr int kSndbuf = 64 * 1024;

std::string Pattern(uint64_t seed, size_t n) {
  crpp::e2e::Random r(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(r.Next());
  return s;
}

const std::vector<std::string>& Messages(int which) {
  static const std::vector<std::string> kMsgs[4] = {
      {"dgram to client 1", Pattern(11, 1500), "3"},
      {"dgram to server", Pattern(12, 4000)},
      {"seqpacket to client", Pattern(13, 777), "4", "last seqpacket"},
      {"seqpacket to server 1", "seqpacket to server 2"},
  };
  return kMsgs[which];
}
const std::vector<std::string> kToAbstract = {"to the abstract name", Pattern(14, 999)};

bool WaitReadable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads what is queued in `fd` now (non-blocking), up to EAGAIN or EOF.
std::string Drain(int fd, bool* eof = nullptr) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 && eof != nullptr) *eof = true;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Every message queued in `fd` now, one string each.
std::vector<std::string> DrainMessages(int fd) {
  std::vector<std::string> out;
  std::string buf(65536, '\0');
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.emplace_back(buf.data(), static_cast<size_t>(n));
  }
  return out;
}

// Reads `n` bytes, waiting up to 5 s for them.
std::string ReadExactly(int fd, size_t n) {
  std::string out;
  while (out.size() < n && WaitReadable(fd, 5000)) {
    char buf[4096];
    ssize_t r = recv(fd, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
    if (r <= 0 && errno != EAGAIN && errno != EINTR) break;
    if (r > 0) out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

void CheckMessages(Verdict& v, const char* what, const std::vector<std::string>& got,
                   const std::vector<std::string>& want) {
  v.Expect(got.size() == want.size(), "%s: %zu messages instead of %zu", what, got.size(),
           want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    v.Expect(got[i] == want[i], "%s: message %zu differs (%zu bytes, want %zu)", what, i,
             got[i].size(), want[i].size());
  }
}

sockaddr_un PathAddress(const std::string& path, socklen_t& len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return a;
}

int ConnectTo(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len;
  sockaddr_un a = PathAddress(path, len);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) Die("connect");
  return fd;
}

void Report(int rep, const Verdict& v, const char* who) {
  std::string line = std::string(who) + (v.ok() ? " OK" : " FAIL " + v.failures()) + "\n";
  (void)!write(rep, line.data(), line.size());
}

void Wait() {
  struct sigaction sa {};
  sa.sa_handler = OnUsr2;
  sigaction(SIGUSR2, &sa, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  while (!g_check) crpp::e2e::SleepMs(10);
}

[[noreturn]] void Client1(int stream, int dgram, int seqpacket, int to_abstract, int rep) {
  Wait();
  Verdict v;
  std::string got = Drain(stream);
  v.Expect(got == Pattern(2, kToClient), "stream: %zu bytes queued, want the %zu sent", got.size(),
           kToClient);
  CheckMessages(v, "dgram", DrainMessages(dgram), Messages(0));
  CheckMessages(v, "seqpacket", DrainMessages(seqpacket), Messages(2));
  v.Expect(SendAll(stream, "after-c"), "stream: send after restore");
  v.Expect(ReadExactly(stream, 7) == "after-s", "stream: no reply after restore");
  v.Expect(send(dgram, "d-after", 7, 0) == 7, "dgram: send after restore");
  v.Expect(send(to_abstract, "a-after", 7, 0) == 7, "abstract: send after restore");
  Report(rep, v, "client1");
  _exit(v.ok() ? 0 : 1);
}

[[noreturn]] void Client2(int conn, int rep) {
  Wait();
  Verdict v;
  v.Expect(ReadExactly(conn, 13) == "hello-pending", "the accepted connection sent nothing");
  v.Expect(SendAll(conn, "pong"), "send on the accepted connection");
  Report(rep, v, "client2");
  _exit(v.ok() ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = crpp::e2e::Setup(argc, argv, "unix_server");
  // OUTDIR/server.sock, unless that is too long for a socket address; the
  // path used is in OUTDIR/socket_path.
  std::string path = dir + "/server.sock";
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    path = "/tmp/crpp-unix-server-" + std::to_string(getpid()) + ".sock";
  }
  unlink(path.c_str());
  FILE* f = fopen((dir + "/socket_path").c_str(), "we");
  if (f == nullptr || fputs(path.c_str(), f) < 0 || fclose(f) != 0) Die("socket_path");
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  socklen_t len;
  sockaddr_un addr = PathAddress(path, len);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(listener, 8) != 0) {
    Die("listen");
  }
  // The abstract name carries our pid: two runs at once do not clash.
  const std::string abstract =
      std::string(1, '\0') + "crpp-unix-server-" + std::to_string(getpid());
  int abstract_sk = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un aaddr{};
  aaddr.sun_family = AF_UNIX;
  memcpy(aaddr.sun_path, abstract.data(), abstract.size());
  socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + abstract.size());
  if (abstract_sk < 0 || bind(abstract_sk, reinterpret_cast<sockaddr*>(&aaddr), alen) != 0) {
    Die("bind abstract");
  }
  int external = -1;
  if (const char* ext = getenv("CRPP_E2E_UNIX_EXTERNAL"); ext != nullptr) {
    socklen_t elen;
    sockaddr_un eaddr = PathAddress(ext, elen);
    external = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (external < 0 || connect(external, reinterpret_cast<sockaddr*>(&eaddr), elen) != 0) {
      Die("connect to CRPP_E2E_UNIX_EXTERNAL");
    }
  }
  int dg[2], sp[2], own[2], rep[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg) != 0 ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, own) != 0 || pipe(rep) != 0) {
    Die("socketpair");
  }
  int c1 = ConnectTo(path);
  int a1 = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (a1 < 0) Die("accept");
  int to_abstract = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (to_abstract < 0 || connect(to_abstract, reinterpret_cast<sockaddr*>(&aaddr), alen) != 0) {
    Die("connect to the abstract name");
  }
  pid_t client1 = fork();
  if (client1 < 0) Die("fork");
  if (client1 == 0) {
    for (int fd : {listener, abstract_sk, dg[0], sp[0], own[0], own[1], rep[0], a1}) close(fd);
    if (external >= 0) close(external);
    if (!SendAll(c1, Pattern(3, kToServer))) _exit(3);
    for (const std::string& m : Messages(1)) send(dg[1], m.data(), m.size(), 0);
    for (const std::string& m : Messages(3)) send(sp[1], m.data(), m.size(), 0);
    for (const std::string& m : kToAbstract) send(to_abstract, m.data(), m.size(), 0);
    if (write(rep[1], "sent\n", 5) != 5) _exit(3);
    Client1(c1, dg[1], sp[1], to_abstract, rep[1]);
  }
  close(c1);
  close(to_abstract);
  close(dg[1]);
  close(sp[1]);
  int c2 = ConnectTo(path);  // connected, never accepted before the dump
  pid_t client2 = fork();
  if (client2 < 0) Die("fork");
  if (client2 == 0) {
    for (int fd : {listener, abstract_sk, dg[0], sp[0], own[0], own[1], rep[0], a1}) close(fd);
    if (external >= 0) close(external);
    Client2(c2, rep[1]);
  }
  close(c2);
  close(rep[1]);
  if (!SendAll(a1, Pattern(2, kToClient))) Die("send to client1");
  for (const std::string& m : Messages(0)) send(dg[0], m.data(), m.size(), 0);
  for (const std::string& m : Messages(2)) send(sp[0], m.data(), m.size(), 0);
  int sndbuf = kSndbuf / 2, one = 1;
  if (setsockopt(own[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0 ||
      setsockopt(own[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0 ||
      fcntl(own[0], F_SETFL, O_NONBLOCK) != 0 || !SendAll(own[1], "bye") ||
      shutdown(own[1], SHUT_WR) != 0) {
    Die("own socketpair");
  }
  // Everything is queued once client1 says it sent all.
  char sent[5];
  if (!WaitReadable(rep[0], 10000) || read(rep[0], sent, sizeof sent) != 5) Die("client1");
  crpp::e2e::Ready();
  crpp::e2e::WaitForVerify();

  Verdict v;
  std::string got = Drain(a1);
  v.Expect(got == Pattern(3, kToServer), "stream: %zu bytes queued, want the %zu sent", got.size(),
           kToServer);
  CheckMessages(v, "dgram", DrainMessages(dg[0]), Messages(1));
  CheckMessages(v, "seqpacket", DrainMessages(sp[0]), Messages(3));
  CheckMessages(v, "abstract", DrainMessages(abstract_sk), kToAbstract);
  bool eof = false;
  v.Expect(Drain(own[0], &eof) == "bye" && eof, "own socketpair: not \"bye\" then end of file");
  v.Expect((fcntl(own[0], F_GETFL) & O_NONBLOCK) != 0, "own socketpair: O_NONBLOCK lost");
  v.Expect((fcntl(own[1], F_GETFL) & O_NONBLOCK) == 0, "own socketpair: O_NONBLOCK appeared");
  int got_buf = 0, got_cred = 0;
  socklen_t ol = sizeof got_buf;
  getsockopt(own[0], SOL_SOCKET, SO_SNDBUF, &got_buf, &ol);
  getsockopt(own[0], SOL_SOCKET, SO_PASSCRED, &got_cred, &ol);
  v.Expect(got_buf == kSndbuf, "own socketpair: SO_SNDBUF %d, want %d", got_buf, kSndbuf);
  v.Expect(got_cred == 1, "own socketpair: SO_PASSCRED lost");
  sockaddr_un name{};
  socklen_t nlen = sizeof name;
  getsockname(listener, reinterpret_cast<sockaddr*>(&name), &nlen);
  v.Expect(path == name.sun_path, "the listening socket is bound to \"%s\"", name.sun_path);
  // The pending connection, then a new one.
  v.Expect(WaitReadable(listener, 2000), "no connection waits in the listening socket");
  int a2 = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  v.Expect(a2 >= 0 && SendAll(a2, "hello-pending"), "cannot accept the pending connection");
  kill(client1, SIGUSR2);
  kill(client2, SIGUSR2);
  v.Expect(ReadExactly(a1, 7) == "after-c", "client1 sent nothing after restore");
  v.Expect(SendAll(a1, "after-s"), "send to client1 after restore");
  if (a2 >= 0) v.Expect(ReadExactly(a2, 4) == "pong", "client2 did not answer");
  v.Expect(WaitReadable(dg[0], 5000) && DrainMessages(dg[0]) == std::vector<std::string>{"d-after"},
           "dgram: nothing new from client1");
  v.Expect(WaitReadable(abstract_sk, 5000) &&
               DrainMessages(abstract_sk) == std::vector<std::string>{"a-after"},
           "abstract: nothing new from client1");
  int c3 = ConnectTo(path);
  int a3 = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  v.Expect(a3 >= 0 && SendAll(c3, "new") && ReadExactly(a3, 3) == "new" && SendAll(a3, "wen") &&
               ReadExactly(c3, 3) == "wen",
           "a new client cannot talk to the server");
  if (external >= 0) {
    v.Expect(send(external, "external-after", 14, MSG_DONTWAIT) == 14,
             "the socket connected outside the tree cannot send: %s", strerror(errno));
  }
  std::string reports;
  while (WaitReadable(rep[0], 5000)) {
    char buf[4096];
    ssize_t n = read(rep[0], buf, sizeof buf);
    if (n <= 0) break;
    reports.append(buf, static_cast<size_t>(n));
  }
  for (pid_t c : {client1, client2}) {
    int st = 0;
    v.Expect(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "child %d failed: %s", c, reports.c_str());
  }
  v.Note("%zu+%zu stream bytes, children: %s", kToClient, kToServer, reports.c_str());
  if (path.rfind(dir, 0) != 0) unlink(path.c_str());
  v.Finish();
}
