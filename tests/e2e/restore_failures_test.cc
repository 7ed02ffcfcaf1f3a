// A failed restore of one task kills it and says which resource failed and
// why (see restore_failure.h for what "failed well" means). Programs of
// tests/e2e/programs are dumped with //tools:criu; then one thing at a time
// is in the way of `criu restore`: the pid is taken, an image is damaged or
// missing, a file the task had open changed, the restorer blob fails at its
// last steps, the pidfile cannot be written, the directory holds no images.
#define BOOST_TEST_MODULE restore_failures
#include <sys/stat.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "mm.pb.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/restore_failure.h"

using crpp::e2e::DamagedImages;
using crpp::e2e::Expected;
using crpp::e2e::Image;
using crpp::e2e::ReadFile;
using crpp::e2e::RequireRestoreFails;
using crpp::e2e::RequireRestoreWorks;
using crpp::e2e::Session;
using crpp::e2e::WriteFile;

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
