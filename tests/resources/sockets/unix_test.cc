// The UNIX socket plugin's pieces on sockets of this process: what
// sock_diag tells (peers, names, pending connections, queue lengths,
// shutdown), reading a queue without consuming it, and socket options.
#define BOOST_TEST_MODULE unix_sockets
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "resources/sockets/unix_diag.h"
#include "resources/sockets/unix_queue.h"

namespace crpp::resources::unix_sk {
namespace {

uint32_t Ino(int fd) {
  struct stat st;
  BOOST_REQUIRE(fstat(fd, &st) == 0);
  return static_cast<uint32_t>(st.st_ino);
}

int OpenFds() {
  auto it = std::filesystem::directory_iterator("/proc/self/fd");
  return static_cast<int>(std::distance(it, std::filesystem::directory_iterator()));
}

// A socketpair closed at the end of the test.
struct Pair {
  int fd[2] = {-1, -1};
  explicit Pair(int type) { BOOST_REQUIRE(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fd) == 0); }
  ~Pair() {
    close(fd[0]);
    close(fd[1]);
  }
};

BOOST_AUTO_TEST_CASE(diag_tells_peers_names_queues_and_pending_connections) {
  Pair p(SOCK_STREAM);
  BOOST_REQUIRE(write(p.fd[0], "hello", 5) == 5);
  BOOST_REQUIRE(shutdown(p.fd[0], SHUT_WR) == 0);
  std::string path = "/tmp/crpp-unix-test-" + std::to_string(getpid()) + ".sock";
  unlink(path.c_str());
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int abs = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path.c_str(), path.size());
  BOOST_REQUIRE(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  BOOST_REQUIRE(listen(l, 3) == 0);
  BOOST_REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  sockaddr_un b{};
  b.sun_family = AF_UNIX;
  const std::string abstract = std::string(1, '\0') + "crpp-test-" + std::to_string(getpid());
  memcpy(b.sun_path, abstract.data(), abstract.size());
  BOOST_REQUIRE(bind(abs, reinterpret_cast<sockaddr*>(&b),
                     offsetof(sockaddr_un, sun_path) + abstract.size()) == 0);

  auto table = ListUnixSockets();
  BOOST_REQUIRE(table.ok());
  const auto& all = table->sockets;
  BOOST_REQUIRE(all.count(Ino(p.fd[0])) && all.count(Ino(p.fd[1])));
  const DiagInfo& end0 = all.at(Ino(p.fd[0]));
  const DiagInfo& end1 = all.at(Ino(p.fd[1]));
  BOOST_TEST(end0.peer == Ino(p.fd[1]));
  BOOST_TEST(end1.peer == Ino(p.fd[0]));
  BOOST_TEST(end0.type == SOCK_STREAM);
  BOOST_TEST(end1.rqueue == 5u);
  BOOST_TEST(end0.shutdown == 2);  // SEND_SHUTDOWN
  BOOST_TEST(end1.shutdown == 1);  // RCV_SHUTDOWN, from its peer
  BOOST_TEST(end0.name.empty());

  const DiagInfo& listener = all.at(Ino(l));
  BOOST_TEST(listener.state == 10);  // TCP_LISTEN
  BOOST_TEST(listener.name == path);
  BOOST_TEST(listener.wqueue == 3u);  // its backlog
  BOOST_TEST((listener.icons == std::vector<uint32_t>{Ino(c)}));
  BOOST_TEST(table->waiting_in.at(Ino(c)) == Ino(l));
  BOOST_TEST(all.at(Ino(c)).peer == 0u);  // its peer has no inode until accepted
  BOOST_TEST(all.at(Ino(abs)).name == abstract);
  BOOST_TEST(all.at(Ino(abs)).abstract());
  BOOST_TEST(PrintableName(abstract) == "@crpp-test-" + std::to_string(getpid()));
  for (int fd : {l, c, abs}) close(fd);
  unlink(path.c_str());
}

BOOST_AUTO_TEST_CASE(peek_keeps_messages_their_boundaries_and_the_peek_offset) {
  for (int type : {SOCK_DGRAM, SOCK_SEQPACKET}) {
    Pair p(type);
    const std::vector<std::string> sent = {"a", std::string(70000, 'x'), "third message"};
    for (const std::string& m : sent) {
      BOOST_REQUIRE(send(p.fd[0], m.data(), m.size(), 0) == static_cast<ssize_t>(m.size()));
    }
    auto got = PeekQueue(p.fd[1], type, "test");
    BOOST_REQUIRE(got.ok());
    BOOST_TEST(*got == sent);
    // Still all there, in order.
    std::string buf(100000, '\0');
    for (const std::string& m : sent) {
      ssize_t n = recv(p.fd[1], buf.data(), buf.size(), MSG_DONTWAIT);
      BOOST_TEST(std::string(buf.data(), n > 0 ? static_cast<size_t>(n) : 0) == m);
    }
  }
  Pair s(SOCK_STREAM);
  std::string bytes(100000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  BOOST_REQUIRE(send(s.fd[0], bytes.data(), bytes.size(), 0) == 100000);
  int off = 7;
  BOOST_REQUIRE(setsockopt(s.fd[1], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) == 0);
  auto got = PeekQueue(s.fd[1], SOCK_STREAM, "test");
  BOOST_REQUIRE(got.ok());
  BOOST_REQUIRE(got->size() == 1u);
  BOOST_TEST((got->front() == bytes));
  int now = 0;
  socklen_t len = sizeof now;
  BOOST_REQUIRE(getsockopt(s.fd[1], SOL_SOCKET, SO_PEEK_OFF, &now, &len) == 0);
  BOOST_TEST(now == 7);
}

BOOST_AUTO_TEST_CASE(passed_fds_and_empty_messages_are_refused) {
  Pair p(SOCK_DGRAM);
  int passed = dup(0);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{const_cast<char*>("fd"), 2};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &passed, sizeof passed);
  BOOST_REQUIRE(sendmsg(p.fd[0], &m, 0) == 2);
  close(passed);
  const int fds = OpenFds();
  auto got = PeekQueue(p.fd[1], SOCK_DGRAM, "pid 1 fd 2");
  BOOST_TEST(!got.ok());
  BOOST_TEST(got.status().message().find("pid 1 fd 2: a queued message carries file "
                                         "descriptors") != std::string::npos);
  BOOST_TEST(OpenFds() == fds);  // the copies peeking made were closed

  Pair e(SOCK_DGRAM);
  BOOST_REQUIRE(send(e.fd[0], "", 0, 0) == 0);
  auto empty = PeekQueue(e.fd[1], SOCK_DGRAM, "x");
  BOOST_TEST(!empty.ok());
  BOOST_TEST(empty.status().message().find("an empty message") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(options_come_back) {
  Pair p(SOCK_STREAM);
  int sndbuf = 50000, one = 1, lowat = 9;
  timeval tv{3, 500};
  BOOST_REQUIRE(setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
  BOOST_REQUIRE(setsockopt(p.fd[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0);
  BOOST_REQUIRE(setsockopt(p.fd[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0);
  BOOST_REQUIRE(setsockopt(p.fd[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
  auto opts = ReadOptions(p.fd[0], "test");
  BOOST_REQUIRE(opts.ok());
  BOOST_TEST(opts->so_sndbuf() == 100000u);
  BOOST_TEST(opts->so_passcred());
  Pair q(SOCK_STREAM);
  auto before = ReadOptions(q.fd[0], "test");
  BOOST_REQUIRE(before.ok());
  BOOST_TEST(before->SerializeAsString() != opts->SerializeAsString());
  BOOST_REQUIRE(ApplyOptions(q.fd[0], *opts, "test").ok());
  auto after = ReadOptions(q.fd[0], "test");
  BOOST_REQUIRE(after.ok());
  BOOST_TEST(after->DebugString() == opts->DebugString());
}

}  // namespace
}  // namespace crpp::resources::unix_sk
