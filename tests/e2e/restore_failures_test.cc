// A failed restore kills every half-restored task and says which resource
// failed and why. Programs of tests/e2e/programs are dumped with //tools:criu;
// then one thing at a time is in the way of `criu restore`: the pid is taken,
// an image is damaged or missing, a file the task had open changed, the
// restorer blob fails at its last steps, the pidfile cannot be written, the
// directory holds no images. Each time `criu restore -d` must exit with status
// 1 and an error, on stderr and in restore.log, that names the file or
// resource and the reason; no process with the pid may remain (alive or a
// zombie), no child of ours is left behind, and no pidfile claims a task.
// Then the intact images restore and the program's verdict is OK: nothing but
// the damage was in the way.
#define BOOST_TEST_MODULE restore_failures
#include <linux/sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
// <signal.h>'s deprecated sigmask() macro would rewrite the proto accessor.
#undef sigmask
#include "core.pb.h"
#include "fdinfo.pb.h"
#include "mm.pb.h"
#include "tests/e2e/harness.h"

namespace {

using crpp::e2e::Session;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  BOOST_REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// "state 'S'" or "gone", and its parent, for messages.
std::string Describe(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  return stat.empty() ? absl::StrCat("pid ", pid, " gone")
                      : absl::StrCat("/proc/", pid, "/stat: ", stat);
}

struct Expected {
  // Each must be in criu's error output and in restore.log.
  std::vector<std::string> wanted;
  // Children of ours that may exist (the original of a dump -R).
  std::vector<pid_t> allowed_children;
  // Where the log goes ("" = stderr: the images directory may not exist).
  std::string log = "restore.log";
  // --pidfile (default: DIR/pid).
  std::string pidfile;
};

// Runs `criu restore -D DIR -d` and requires it to fail as described above;
// PID is the task it would restore.
void RequireRestoreFails(Session& s, const std::string& dir, pid_t pid, const Expected& e) {
  const std::string pidfile = e.pidfile.empty() ? dir + "/pid" : e.pidfile;
  std::vector<std::string> args = {"restore", "-D", dir, "-d", "--pidfile", pidfile, "-v4"};
  if (!e.log.empty()) args.insert(args.end(), {"-o", e.log});
  absl::StatusOr<Session::CriuRun> run = s.RunCriuAnyway("restore-damaged", args);
  E2E_REQUIRE_OK(s, run.status());
  std::cout << s.dir() << ": criu restore -D " << dir << ": "
            << crpp::e2e::DescribeWaitStatus(run->wait_status) << ": " << run->output;
  BOOST_CHECK_MESSAGE(WIFEXITED(run->wait_status) && WEXITSTATUS(run->wait_status) == 1,
                      "criu restore ended with " << crpp::e2e::DescribeWaitStatus(run->wait_status)
                                                 << ", want exit 1\n"
                                                 << run->output);
  // With -o, a summary line on stderr; without, the log itself is stderr.
  BOOST_CHECK_MESSAGE(
      absl::StrContains(run->output, e.log.empty() ? "Error: restore: " : "Error (restore): "),
      "no error on stderr: " << run->output);
  const std::string log = e.log.empty() ? "" : ReadFile(dir + "/" + e.log);
  for (const std::string& w : e.wanted) {
    BOOST_CHECK_MESSAGE(absl::StrContains(run->output, w),
                        "'" << w << "' not in criu's output: " << run->output);
    if (!e.log.empty()) {
      BOOST_CHECK_MESSAGE(absl::StrContains(log, w), "'" << w << "' not in " << dir << "/" << e.log
                                                         << ":\n"
                                                         << log);
    }
  }
  // Nothing half-restored survives: not under the pid, not as our child.
  const bool pid_allowed = std::find(e.allowed_children.begin(), e.allowed_children.end(), pid) !=
                           e.allowed_children.end();
  if (!pid_allowed) {
    BOOST_CHECK_MESSAGE(!Exists(absl::StrCat("/proc/", pid)),
                        "a process with pid " << pid << " remains: " << Describe(pid));
  }
  for (pid_t child : crpp::e2e::Children()) {
    const bool allowed = std::find(e.allowed_children.begin(), e.allowed_children.end(), child) !=
                         e.allowed_children.end();
    BOOST_CHECK_MESSAGE(allowed, "left behind as our child: " << Describe(child));
  }
  BOOST_CHECK_MESSAGE(!Exists(pidfile),
                      "the pidfile " << pidfile << " was written: " << ReadFile(pidfile));
}

// Restores the intact images of the last dump; the program runs and its
// verdict is OK.
void RequireRestoreWorks(Session& s) {
  E2E_REQUIRE_OK(s, s.Restore());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, s.Verdict());
  std::cout << s.dir() << ": restored from the intact images: " << s.last_verdict() << std::endl;
}

// Damages a copy of the images of one dump.
using Damage = std::function<Expected(const std::string& dir, pid_t pid)>;

// Starts PROGRAM, dumps it, requires that the restore of a copy of the
// images with DAMAGE done fails, then that the intact ones restore (after
// REPAIR, for damage outside the images).
void DamagedImages(const std::string& name, const std::string& program, const Damage& damage,
                   const std::function<void()>& repair = nullptr) {
  Session s(name, program);
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, s.Dump());
  const pid_t pid = s.pid();
  const std::string damaged = s.dir() + "/damaged";
  std::error_code ec;
  std::filesystem::copy(s.ImagesDir(s.dumps()), damaged, std::filesystem::copy_options::recursive,
                        ec);
  BOOST_REQUIRE_MESSAGE(!ec, "copying the images: " << ec.message());
  const Expected expected = damage(damaged, pid);
  RequireRestoreFails(s, damaged, pid, expected);
  if (repair) repair();
  RequireRestoreWorks(s);
}

std::string Image(const std::string& dir, const std::string& kind, pid_t pid) {
  return absl::StrCat(dir, "/", kind, "-", pid, ".img");
}

}  // namespace

// (a) The pid is taken: the original still runs after `criu dump -R`.
BOOST_AUTO_TEST_CASE(pid_in_use) {
  Session s("pid_in_use", "counter");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  absl::StatusOr<std::string> before = crpp::e2e::OutsideView(s.pid());
  E2E_REQUIRE_OK(s, before.status());
  E2E_REQUIRE_OK(s, s.Dump({"-R"}));
  Expected e;
  e.wanted = {absl::StrCat("pid ", s.pid(), " is in use")};
  e.allowed_children = {s.pid()};
  RequireRestoreFails(s, s.ImagesDir(1), s.pid(), e);
  // The original is untouched, runs on and is intact.
  E2E_REQUIRE_OK(s, s.ExpectRunning());
  E2E_REQUIRE_OK(s, crpp::e2e::ExpectOutsideView(s.pid(), *before));
  E2E_REQUIRE_OK(s, s.Verdict());
  std::cout << s.dir() << ": the original: " << s.last_verdict() << std::endl;
  // Once it is gone, its pid is free and the images restore.
  RequireRestoreWorks(s);
}

// (b) Damaged images.
BOOST_AUTO_TEST_CASE(core_image_truncated) {
  DamagedImages("core_truncated", "registers", [](const std::string& dir, pid_t pid) {
    const std::string core = Image(dir, "core", pid);
    const std::string data = ReadFile(core);
    BOOST_REQUIRE(data.size() > 100);
    WriteFile(core, data.substr(0, data.size() / 2));
    return Expected{{"core: restore: ", Image(dir, "core", pid), "truncated"}};
  });
}

// The first byte of the mm entry is the tag of field 1 (mm_start_code, a
// varint: 0x08); with bit 4 flipped it reads as field 3 (0x18), so the entry
// still parses but lacks a required field.
BOOST_AUTO_TEST_CASE(mm_image_byte_flipped) {
  DamagedImages("mm_byte_flipped", "counter", [](const std::string& dir, pid_t pid) {
    const std::string mm = Image(dir, "mm", pid);
    std::string data = ReadFile(mm);
    constexpr size_t kFirstTag = 12;  // head magic, image magic, entry size
    BOOST_REQUIRE(data.size() > kFirstTag);
    BOOST_REQUIRE_EQUAL(static_cast<int>(static_cast<uint8_t>(data[kFirstTag])), 0x08);
    data[kFirstTag] ^= 0x10;
    WriteFile(mm, data);
    // The shmem plugin reads every mm image first (for the shared anonymous
    // memory the tree maps), before the task's own memory is restored.
    return Expected{{"shmem: restore: ", mm, "is not a valid criu.mm_entry"}};
  });
}

// A flipped byte in the image magic: not an mm image any more.
BOOST_AUTO_TEST_CASE(mm_image_magic_flipped) {
  DamagedImages("mm_magic_flipped", "counter", [](const std::string& dir, pid_t pid) {
    const std::string mm = Image(dir, "mm", pid);
    std::string data = ReadFile(mm);
    BOOST_REQUIRE(data.size() > 8);
    data[5] ^= 0x01;
    WriteFile(mm, data);
    return Expected{{"shmem: restore: ", mm, "magic"}};
  });
}

BOOST_AUTO_TEST_CASE(pages_image_deleted) {
  DamagedImages("pages_deleted", "memory", [](const std::string& dir, pid_t pid) {
    const std::string pages = dir + "/pages-1.img";
    BOOST_REQUIRE(unlink(pages.c_str()) == 0);
    return Expected{{"memory: restore: ", pages, "No such file or directory"}};
  });
}

BOOST_AUTO_TEST_CASE(pages_image_truncated) {
  DamagedImages("pages_truncated", "memory", [](const std::string& dir, pid_t pid) {
    const std::string pages = dir + "/pages-1.img";
    struct stat st;
    BOOST_REQUIRE(stat(pages.c_str(), &st) == 0 && st.st_size > 8192);
    BOOST_REQUIRE(truncate(pages.c_str(), st.st_size - 4096) == 0);
    return Expected{{"memory: restore: ", pages, "truncated pages image"}};
  });
}

BOOST_AUTO_TEST_CASE(inventory_image_deleted) {
  DamagedImages("inventory_deleted", "counter", [](const std::string& dir, pid_t pid) {
    const std::string inventory = dir + "/inventory.img";
    BOOST_REQUIRE(unlink(inventory.c_str()) == 0);
    return Expected{{"inventory: restore: ", inventory, "No such file or directory"}};
  });
}

// A file the task had open (read-only, not appended to) has another size.
BOOST_AUTO_TEST_CASE(open_file_changed_size) {
  std::string data_file;
  std::string original;
  DamagedImages(
      "open_file_changed", "files",
      [&](const std::string& dir, pid_t pid) {
        data_file = std::filesystem::canonical(std::filesystem::path(dir).parent_path() /
                                               "out/files_cwd/data.bin")
                        .string();
        original = ReadFile(data_file);
        BOOST_REQUIRE(!original.empty());
        WriteFile(data_file, original + "one more line\n");
        return Expected{{"fds: restore: ", data_file, "changed size since the dump"}};
      },
      [&] { WriteFile(data_file, original); });
}

// The plugins succeed but the restorer blob, at its last steps (the engine
// is gone from the task by then), fails: PR_SET_MM_MAP refuses a brk below
// the start of the heap.
BOOST_AUTO_TEST_CASE(restorer_fails_at_mm_map) {
  DamagedImages("restorer_fails", "counter", [](const std::string& dir, pid_t pid) {
    namespace images = crpp::images;
    const std::string mm = Image(dir, "mm", pid);
    auto entries = images::ReadAll<criu::mm_entry>(mm, images::Mm());
    BOOST_REQUIRE_MESSAGE(entries.ok() && entries->size() == 1, entries.status());
    criu::mm_entry& e = entries->front();
    e.set_mm_brk(e.mm_start_brk() - 4096);
    auto w = images::TypedImageWriter<criu::mm_entry>::Create(mm, images::Mm());
    BOOST_REQUIRE(w.ok());
    BOOST_REQUIRE(w->Write(e).ok());
    BOOST_REQUIRE(w->Close().ok());
    return Expected{
        {absl::StrCat("pid ", pid, ": the restorer failed at mm layout"), "Invalid argument"}};
  });
}

// The pidfile cannot be written: criu says so and the task it restored does
// not stay behind (as criu does).
BOOST_AUTO_TEST_CASE(pidfile_not_writable) {
  Session s("pidfile_not_writable", "counter");
  E2E_REQUIRE_OK(s, s.Start());
  E2E_REQUIRE_OK(s, s.Dump());
  Expected e;
  e.pidfile = s.dir() + "/no/such/dir/pid";
  e.wanted = {"cannot write pidfile", e.pidfile};
  RequireRestoreFails(s, s.ImagesDir(1), s.pid(), e);
  RequireRestoreWorks(s);
}

// (c) No images.
BOOST_AUTO_TEST_CASE(empty_images_dir) {
  Session s("empty_images_dir", "counter");
  const std::string dir = s.dir() + "/empty";
  std::filesystem::create_directories(dir);
  Expected e;
  e.wanted = {dir + "/pstree.img", "No such file or directory"};
  // No pid to look for: any left behind would be our child.
  RequireRestoreFails(s, dir, /*pid=*/0, e);
}

BOOST_AUTO_TEST_CASE(nonexistent_images_dir) {
  Session s("nonexistent_images_dir", "counter");
  const std::string dir = s.dir() + "/no/such/dir";
  Expected e;
  e.log = "";  // no directory to write it in
  e.pidfile = s.dir() + "/pid";
  e.wanted = {dir, "No such file or directory"};
  RequireRestoreFails(s, dir, /*pid=*/0, e);
}

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
