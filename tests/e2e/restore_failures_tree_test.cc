// A failed restore of a tree kills every half-restored task, the root and
// every other task included, and says which resource failed and why (see
// restore_failure.h): a task below the root fails, an image of a resource
// tasks share is damaged, a socket's path is taken, tasks sharing an fd
// table fail while they take turns in it.
#define BOOST_TEST_MODULE restore_failures_tree
#include <linux/sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
// <signal.h>'s deprecated sigmask() macro would rewrite the proto accessor.
#undef sigmask
#include "core.pb.h"
#include "fdinfo.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/restore_failure.h"

using crpp::e2e::DamagedImages;
using crpp::e2e::Exists;
using crpp::e2e::Expected;
using crpp::e2e::Image;
using crpp::e2e::ReadFile;
using crpp::e2e::WriteFile;

// (c) A task below the root fails: the whole half-restored tree goes, the
// root and every other task of it included.
// files.img rewritten with CHANGE applied to its entries.
void EditFiles(const std::string& dir, const std::function<void(criu::file_entry&)>& change) {
  const std::string path = dir + "/files.img";
  auto entries = crpp::images::ReadAll<criu::file_entry>(path, crpp::images::Files());
  BOOST_REQUIRE_MESSAGE(entries.ok(), entries.status());
  auto w = crpp::images::TypedImageWriter<criu::file_entry>::Create(path, crpp::images::Files());
  BOOST_REQUIRE(w.ok());
  for (auto& e : *entries) {
    change(e);
    BOOST_REQUIRE(w->Write(e).ok());
  }
  BOOST_REQUIRE(w->Close().ok());
}

// A timerfd on a clock that does not exist: the root fails before any other
// task of the events program (it has a child) is forked.
BOOST_AUTO_TEST_CASE(timerfd_bad_clock) {
  DamagedImages("timerfd_bad_clock", "events", [](const std::string& dir, pid_t) {
    EditFiles(dir, [](criu::file_entry& e) {
      if (e.has_tfd()) e.mutable_tfd()->set_clockid(99);
    });
    return Expected{{"timerfd: restore: ", "clock 99): timerfd_create: Invalid argument"}};
  });
}

// An epoll target under an fd number its owner does not have: the owner
// finds out once its fds are in place (its child is forked by then).
BOOST_AUTO_TEST_CASE(epoll_target_missing) {
  DamagedImages("epoll_target_missing", "events", [](const std::string& dir, pid_t) {
    EditFiles(dir, [](criu::file_entry& e) {
      if (e.has_epfd()) e.mutable_epfd()->mutable_tfd(0)->set_tfd(77);
    });
    return Expected{
        {"eventpoll-targets: restore: ", "its target fd 77 is not among the process's fds"}};
  });
}

// Two epolls that watch each other, which the kernel never allows: the
// inner epoll of epoll_nested made to watch the outer one.
BOOST_AUTO_TEST_CASE(epoll_cycle) {
  DamagedImages("epoll_cycle", "epoll_nested", [](const std::string& dir, pid_t) {
    auto files = crpp::images::ReadAll<criu::file_entry>(dir + "/files.img", crpp::images::Files());
    BOOST_REQUIRE_MESSAGE(files.ok(), files.status());
    uint32_t outer = 0;
    for (const auto& f : *files) {
      if (f.has_epfd() && f.epfd().tfd_size() == 8) outer = f.id();
    }
    BOOST_REQUIRE(outer != 0);
    int outer_fd = -1;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().filename().string().rfind("fdinfo-", 0) != 0) continue;
      auto fds = crpp::images::ReadAll<criu::fdinfo_entry>(e.path(), crpp::images::Fdinfo());
      BOOST_REQUIRE_MESSAGE(fds.ok(), fds.status());
      for (const auto& fe : *fds) {
        if (fe.id() == outer) outer_fd = static_cast<int>(fe.fd());
      }
    }
    BOOST_REQUIRE(outer_fd >= 0);
    EditFiles(dir, [outer_fd](criu::file_entry& e) {
      if (e.has_epfd() && e.epfd().tfd_size() == 2) {
        e.mutable_epfd()->mutable_tfd(0)->set_tfd(static_cast<uint32_t>(outer_fd));
      }
    });
    return Expected{{"eventpoll-targets: restore: ", "epolls watch each other in a cycle"}};
  });
}

// A file that a fanotify mark is on is not at its path any more: the root
// fails, naming it, before the other task is forked; moved back (the same
// inode: the program checks the marks' inode numbers), the images restore.
BOOST_AUTO_TEST_CASE(fanotify_marked_file_gone) {
  std::string watched;
  DamagedImages(
      "fanotify_marked_file_gone", "fanotify",
      [&](const std::string& dir, pid_t) {
        watched =
            std::filesystem::canonical(std::filesystem::path(dir).parent_path() / "out/watched")
                .string();
        BOOST_REQUIRE(rename(watched.c_str(), (watched + ".away").c_str()) == 0);
        return Expected{{"fanotify: restore: ", watched, "No such file or directory"}};
      },
      [&] { BOOST_REQUIRE(rename((watched + ".away").c_str(), watched.c_str()) == 0); });
}

BOOST_AUTO_TEST_CASE(tree_child_core_image_deleted) {
  std::vector<pid_t> tree;
  DamagedImages("tree_child_core_deleted", "pipeline", [&tree](const std::string& dir, pid_t pid) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string name = e.path().filename();
      if (name.rfind("core-", 0) == 0) tree.push_back(atoi(name.c_str() + 5));
    }
    std::sort(tree.begin(), tree.end());
    BOOST_REQUIRE_EQUAL(tree.size(), 4u);  // the root and its three children
    const std::string core = Image(dir, "core", tree.back());
    BOOST_REQUIRE(tree.back() != pid && unlink(core.c_str()) == 0);
    return Expected{{absl::StrCat("pid ", tree.back(), ": core: restore: "), core,
                     "No such file or directory"}};
  });
  // DamagedImages restored the intact images after the failure: the pids
  // were all free again.
  BOOST_TEST(tree.size() == 4u);
}

// The messages queued in the UNIX sockets are cut short: the restore fails
// naming sk-queues.img.
BOOST_AUTO_TEST_CASE(sk_queues_image_truncated) {
  DamagedImages("sk_queues_truncated", "unix_server", [](const std::string& dir, pid_t) {
    const std::string queues = dir + "/sk-queues.img";
    const std::string data = ReadFile(queues);
    BOOST_REQUIRE(data.size() > 100000);
    WriteFile(queues, data.substr(0, data.size() - 1000));
    return Expected{{"unix: restore: ", queues}};
  });
}

// A live socket is bound at the path of the listening socket: the restore
// does not take its path away, fails naming it and leaves nothing behind;
// once that socket is gone, the images restore.
BOOST_AUTO_TEST_CASE(unix_socket_path_in_use) {
  int live = -1;
  std::string path;
  DamagedImages(
      "unix_socket_path_in_use", "unix_server",
      [&](const std::string& dir, pid_t) {
        // The path the server listens at (unix_server.cc): DIR is
        // SESSION/damaged, the program's OUTDIR is SESSION/out.
        path = ReadFile(dir + "/../out/socket_path");
        BOOST_REQUIRE(!path.empty());
        unlink(path.c_str());  // the stale socket file of the dumped server
        live = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
        BOOST_REQUIRE(bind(live, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        BOOST_REQUIRE(listen(live, 4) == 0);
        return Expected{{"unix: restore: ", "a live socket is bound to " + path}};
      },
      [&] {
        BOOST_TEST(Exists(path), "the restore removed the live socket's file");
        close(live);
      });
}

// (d) Processes sharing an fd table take turns in it (restore_task.cc): one
// of them fails at each point of the turns, and the whole tree goes.
// shared_files' pids (the root, the child, the grandchildren) and the one
// with a table of its own, from the images.
struct SharedFilesTree {
  std::vector<pid_t> pids;
  pid_t own_table = 0;
};
SharedFilesTree ReadSharedFilesTree(const std::string& dir) {
  SharedFilesTree t;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename();
    if (name.rfind("core-", 0) == 0) t.pids.push_back(atoi(name.c_str() + 5));
  }
  std::sort(t.pids.begin(), t.pids.end());
  BOOST_REQUIRE_EQUAL(t.pids.size(), 4u);
  std::vector<uint32_t> tables;
  for (pid_t pid : t.pids) {
    auto ids = crpp::images::ReadAll<criu::task_kobj_ids_entry>(Image(dir, "ids", pid),
                                                                crpp::images::Ids());
    BOOST_REQUIRE_MESSAGE(ids.ok() && ids->size() == 1, ids.status());
    tables.push_back(ids->front().files_id());
  }
  for (size_t i = 1; i < t.pids.size(); ++i) {
    if (tables[i] != tables[0]) t.own_table = t.pids[i];
  }
  BOOST_REQUIRE_EQUAL(std::count(tables.begin(), tables.end(), tables[0]), 3);
  return t;
}

// The root fails restoring its memory while both sharers wait for their turn.
BOOST_AUTO_TEST_CASE(shared_files_owner_fails) {
  DamagedImages("shared_files_owner_fails", "shared_files", [](const std::string& dir, pid_t pid) {
    const std::string pages = dir + "/pages-1.img";  // the root's (its task id is 1)
    BOOST_REQUIRE(unlink(pages.c_str()) == 0);
    return Expected{
        {absl::StrCat("pid ", pid, ": memory: restore: "), pages, "No such file or directory"}};
  });
}

// The sharing child fails once the root has handed it the table (the root
// may be in its restorer by then), while the sharing grandchild waits.
BOOST_AUTO_TEST_CASE(shared_files_sharer_fails) {
  DamagedImages("shared_files_sharer_fails", "shared_files", [](const std::string& dir, pid_t) {
    const pid_t child = ReadSharedFilesTree(dir).pids[1];
    const std::string fs = Image(dir, "fs", child);
    BOOST_REQUIRE(unlink(fs.c_str()) == 0);
    return Expected{
        {absl::StrCat("pid ", child, ": fds: restore: "), fs, "No such file or directory"}};
  });
}

// A process of ours with pid PID (clone3 with set_tid), pausing; waits a
// moment for a task of the dumped tree still holding it.
pid_t HoldPid(pid_t pid) {
  pid_t tid = pid;
  clone_args ca{};
  ca.exit_signal = SIGCHLD;
  ca.set_tid = reinterpret_cast<uint64_t>(&tid);
  ca.set_tid_size = 1;
  for (int i = 0; i < 150; ++i) {
    const long got = syscall(SYS_clone3, &ca, sizeof ca);
    while (got == 0) pause();
    if (got > 0 || errno != EEXIST) return static_cast<pid_t>(got);
    usleep(20000);
  }
  return -1;
}

// The sharing child cannot fork the grandchild with a table of its own (a
// process of ours has its pid) and dies before it is done forking; the
// root, waiting for that, notices and fails too. Either error may come
// first (the engine reads every task's report as it comes): both name the
// child, and the log has the child's.
BOOST_AUTO_TEST_CASE(shared_files_sharer_dies_forking) {
  pid_t holder = -1;
  std::string log;
  std::string why;
  DamagedImages(
      "shared_files_sharer_dies_forking", "shared_files",
      [&](const std::string& dir, pid_t) {
        const SharedFilesTree t = ReadSharedFilesTree(dir);
        holder = HoldPid(t.own_table);
        BOOST_REQUIRE_MESSAGE(holder == t.own_table,
                              "cannot take pid " << t.own_table << ": " << strerror(errno));
        log = dir + "/restore.log";
        why = absl::StrCat("pid ", t.pids[1], ": pid ", t.own_table, " is in use");
        Expected e{{absl::StrCat("pid ", t.pids[1])}};
        e.allowed_children = {holder};
        return e;
      },
      [&] {
        kill(holder, SIGKILL);
        waitpid(holder, nullptr, 0);
        BOOST_CHECK_MESSAGE(absl::StrContains(ReadFile(log), why),
                            "'" << why << "' not in " << log);
      });
}

// Images saying that two siblings share an fd table their parent does not
// (ids-PID.img rewritten): restore forks only a child with its parent's
// table sharing it, and refuses before forking anything.
BOOST_AUTO_TEST_CASE(fd_table_shared_by_siblings) {
  DamagedImages("fd_table_shared_by_siblings", "pipeline", [](const std::string& dir, pid_t pid) {
    std::vector<pid_t> children;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string name = e.path().filename();
      const pid_t p = name.rfind("ids-", 0) == 0 ? atoi(name.c_str() + 4) : 0;
      if (p != 0 && p != pid) children.push_back(p);
    }
    std::sort(children.begin(), children.end());
    BOOST_REQUIRE_EQUAL(children.size(), 3u);
    namespace images = crpp::images;
    auto first =
        images::ReadAll<criu::task_kobj_ids_entry>(Image(dir, "ids", children[0]), images::Ids());
    auto second =
        images::ReadAll<criu::task_kobj_ids_entry>(Image(dir, "ids", children[1]), images::Ids());
    BOOST_REQUIRE(first.ok() && second.ok() && first->size() == 1 && second->size() == 1);
    criu::task_kobj_ids_entry e = second->front();
    e.set_files_id(first->front().files_id());
    auto w = images::TypedImageWriter<criu::task_kobj_ids_entry>::Create(
        Image(dir, "ids", children[1]), images::Ids());
    BOOST_REQUIRE(w.ok() && w->Write(e).ok() && w->Close().ok());
    return Expected{
        {absl::StrCat("pid ", children[1], " uses fd table ", first->front().files_id(),
                      ", as pid ", children[0], " does, but not its parent's (", pid, ")")}};
  });
}
