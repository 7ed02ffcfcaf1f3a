// The ghosts plugin on a real child that holds deleted files: what it dumps,
// what it refuses, and what its restore hands over (in this process).
#define BOOST_TEST_MODULE ghost
#include "resources/files/ghost.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "remap-file-path.pb.h"
#include "resources/files/fds.h"
#include "tests/testing/files.h"

namespace crpp {
namespace {

using testing::FreshDir;

constexpr int kFd = 40;

// A child that runs `setup` (which leaves what it holds at fd kFd), then
// waits to be killed.
class Holder {
 public:
  explicit Holder(const std::function<void()>& setup) {
    int ready[2];
    BOOST_REQUIRE(pipe(ready) == 0);
    pid_ = fork();
    BOOST_REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      setup();
      char c = 'r';
      if (write(ready[1], &c, 1) != 1) _exit(1);
      for (;;) pause();
    }
    close(ready[1]);
    char c = 0;
    BOOST_REQUIRE(read(ready[0], &c, 1) == 1);
    close(ready[0]);
  }
  ~Holder() { Stop(); }
  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Creates `path` with `data`, opens it at kFd with `flags`, seeks to `pos`,
// links it as `other` too (unless empty) and unlinks `path` (in the child).
void HoldDeleted(const std::string& path, const std::string& data, int flags, off_t pos,
                 const std::string& other = "") {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0640);
  if (fd < 0 || write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) _exit(2);
  close(fd);
  fd = open(path.c_str(), flags);
  if (fd < 0 || dup2(fd, kFd) != kFd || lseek(kFd, pos, SEEK_SET) != pos) _exit(3);
  close(fd);
  if (!other.empty() && link(path.c_str(), other.c_str()) != 0) _exit(5);
  if (unlink(path.c_str()) != 0) _exit(4);
}

DumpContext ContextFor(pid_t pid, const std::string& images, FileTable& files) {
  DumpContext d;
  d.root_pid = pid;
  d.images_dir = images;
  d.files = &files;
  TreeTask t;
  t.pid = pid;
  d.tree = {t};
  return d;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string LinkOf(int fd) {
  char buf[4096];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

BOOST_AUTO_TEST_CASE(a_deleted_file_comes_back_deleted_with_its_contents_and_offset) {
  const std::string dir = FreshDir("ghost-data"), images = FreshDir("ghost-images");
  const std::string path = dir + "/file";
  const std::string data = std::string(5000, 'x') + "the end";
  Holder h([&] { HoldDeleted(path, data, O_RDWR | O_APPEND, 123); });
  FileTable files;
  DumpContext d = ContextFor(h.pid(), images, files);
  BOOST_REQUIRE(resources::Ghosts::Precheck(d).ok());
  absl::Status s = resources::Ghosts::Dump(d);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE(d.fd_ids.count(std::make_pair(h.pid(), kFd)) == 1u);
  BOOST_REQUIRE(resources::FileTableImage::Dump(d).ok());
  auto remaps = images::ReadAll<criu::remap_file_path_entry>(
      images + "/remap-fpath.img", *images::FindKindByName("REMAP_FPATH"));
  BOOST_REQUIRE(remaps.ok());
  BOOST_REQUIRE_EQUAL(remaps->size(), 1u);
  const uint32_t file_id = d.fd_ids[std::make_pair(h.pid(), kFd)].id;
  BOOST_TEST((*remaps)[0].orig_id() == file_id);
  BOOST_TEST((*remaps)[0].remap_type() == criu::GHOST);
  BOOST_TEST(std::filesystem::exists(images + "/ghost-file-1.img"));
  h.Stop();

  RestoreContext r;
  r.images_dir = images;
  r.fd_base = 600;
  s = resources::Ghosts::Restore(r);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE_EQUAL(r.inherited.size(), 1u);
  const int fd = r.inherited.begin()->second;
  BOOST_TEST(fd >= 600);
  BOOST_TEST(LinkOf(fd) == path + " (deleted)");
  BOOST_TEST(lseek(fd, 0, SEEK_CUR) == 123);
  BOOST_TEST((fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_RDWR | O_APPEND));
  struct stat st;
  BOOST_REQUIRE(fstat(fd, &st) == 0);
  BOOST_TEST(st.st_nlink == 0u);
  BOOST_TEST((st.st_mode & 07777) == 0640u);
  std::string back(data.size(), '\0');
  BOOST_TEST(pread(fd, back.data(), back.size(), 0) == static_cast<ssize_t>(data.size()));
  BOOST_TEST(back == data);
  BOOST_TEST(Names(dir).empty(), "left in the directory: " << Names(dir).size());
  close(fd);
}

BOOST_AUTO_TEST_CASE(a_taken_name_leaves_the_ghost_under_a_temporary_one_removed_too) {
  const std::string dir = FreshDir("ghost-taken"), images = FreshDir("ghost-taken-images");
  const std::string path = dir + "/file";
  Holder h([&] { HoldDeleted(path, "contents", O_RDONLY, 3); });
  FileTable files;
  DumpContext d = ContextFor(h.pid(), images, files);
  BOOST_REQUIRE(resources::Ghosts::Dump(d).ok());
  BOOST_REQUIRE(resources::FileTableImage::Dump(d).ok());
  h.Stop();
  testing::Spit(path, "someone else's");
  RestoreContext r;
  r.images_dir = images;
  r.fd_base = 600;
  absl::Status s = resources::Ghosts::Restore(r);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE_EQUAL(r.inherited.size(), 1u);
  const int fd = r.inherited.begin()->second;
  char buf[16] = {};
  BOOST_TEST(read(fd, buf, sizeof(buf)) == 5);
  BOOST_TEST(std::string(buf) == "tents");
  BOOST_TEST(LinkOf(fd).ends_with(" (deleted)"));
  BOOST_TEST(Names(dir) == std::vector<std::string>{"file"}, boost::test_tools::per_element());
  BOOST_TEST(testing::Slurp(path) == "someone else's");
  close(fd);
}

BOOST_AUTO_TEST_CASE(link_remap_links_it_back_and_restore_removes_the_link) {
  const std::string dir = FreshDir("ghost-linked"), images = FreshDir("ghost-linked-images");
  const std::string path = dir + "/file", keep = dir + "/keep";
  Holder h([&] { HoldDeleted(path, "0123456789", O_RDWR, 4, keep); });
  FileTable files;
  DumpContext d = ContextFor(h.pid(), images, files);
  d.link_remap = true;
  BOOST_REQUIRE(resources::Ghosts::Precheck(d).ok());
  absl::Status s = resources::Ghosts::Dump(d);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE(resources::FileTableImage::Dump(d).ok());
  BOOST_REQUIRE_EQUAL(d.remove_on_failure.size(), 1u);
  const std::string link = d.remove_on_failure[0];
  BOOST_TEST(link.starts_with(dir + "/link_remap."));
  struct stat kept, linked;
  BOOST_REQUIRE(stat(keep.c_str(), &kept) == 0 && stat(link.c_str(), &linked) == 0);
  BOOST_TEST(kept.st_ino == linked.st_ino);
  BOOST_TEST(!std::filesystem::exists(images + "/ghost-file-1.img"));
  h.Stop();

  RestoreContext r;
  r.images_dir = images;
  r.fd_base = 600;
  s = resources::Ghosts::Restore(r);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  BOOST_REQUIRE_EQUAL(r.inherited.size(), 1u);
  const int fd = r.inherited.begin()->second;
  BOOST_TEST(LinkOf(fd) == path + " (deleted)");
  BOOST_TEST(lseek(fd, 0, SEEK_CUR) == 4);
  struct stat st;
  BOOST_REQUIRE(fstat(fd, &st) == 0);
  BOOST_TEST(st.st_ino == kept.st_ino);
  BOOST_TEST(std::filesystem::exists(link), "the link goes only once the restore succeeded");
  BOOST_REQUIRE(resources::Ghosts::RemoveLinks(images).ok());
  BOOST_TEST(Names(dir) == std::vector<std::string>{"keep"}, boost::test_tools::per_element());
  BOOST_REQUIRE(fstat(fd, &st) == 0);
  BOOST_TEST(st.st_nlink == 1u);
  close(fd);
}

BOOST_AUTO_TEST_CASE(refused_another_hard_link_and_over_the_limit) {
  const std::string dir = FreshDir("ghost-refused"), images = FreshDir("ghost-refused-images");
  {
    const std::string path = dir + "/linked";
    Holder h([&] { HoldDeleted(path, "data", O_RDONLY, 0, dir + "/other"); });
    FileTable files;
    DumpContext d = ContextFor(h.pid(), images, files);
    absl::Status s = resources::Ghosts::Precheck(d);
    BOOST_TEST(absl::IsUnimplemented(s));
    BOOST_TEST(s.message().find("--link-remap") != std::string::npos, s.message());
    BOOST_TEST(s.message().find(path) != std::string::npos, s.message());
    BOOST_TEST(s.message().find("fd 40") != std::string::npos, s.message());
  }
  {
    Holder h([&] { HoldDeleted(dir + "/big", std::string(100, 'b'), O_RDONLY, 0); });
    FileTable files;
    DumpContext d = ContextFor(h.pid(), images, files);
    d.ghost_limit = 99;
    absl::Status s = resources::Ghosts::Precheck(d);
    BOOST_TEST(absl::IsUnimplemented(s));
    BOOST_TEST(s.message().find("--ghost-limit") != std::string::npos, s.message());
    d.ghost_limit = 100;
    BOOST_TEST(resources::Ghosts::Precheck(d).ok());
  }
}

}  // namespace
}  // namespace crpp
