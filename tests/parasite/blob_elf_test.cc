#define BOOST_TEST_MODULE blob_elf
#include "parasite/tools/blob_elf.h"

#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/parasite/test_blob.h"
#include "tests/testing/files.h"

namespace {

namespace tb = crpp::blobs::test_blob;
using crpp::blobtool::ReadLinkedBlob;

std::vector<unsigned char> Runfile(const std::string& name) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  std::string path = std::string(srcdir ? srcdir : ".") + "/crpp/tests/parasite/" + name;
  std::string bytes = crpp::testing::Slurp(path);
  BOOST_REQUIRE_MESSAGE(!bytes.empty(), "missing runfile " << path);
  return {bytes.begin(), bytes.end()};
}

// The error ReadLinkedBlob gives for a file that must be refused.
std::string Refusal(const std::string& name, std::vector<std::string> entries = {}) {
  auto blob = ReadLinkedBlob(Runfile(name), entries);
  BOOST_REQUIRE_MESSAGE(!blob.ok(), name << " was accepted");
  return std::string(blob.status().message());
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(accepts_the_test_blob_as_the_build_did) {
  std::vector<std::string> entries = {"test_add", "test_apply"};
  auto blob = ReadLinkedBlob(Runfile("test_blob.elf"), entries);
  BOOST_REQUIRE_MESSAGE(blob.ok(), blob.status().message());
  BOOST_TEST(blob->image.size() == tb::kImageSize);
  BOOST_TEST(std::equal(blob->image.begin(), blob->image.end(), tb::kImage));
  BOOST_TEST(blob->mem_size == tb::kMemSize);
  BOOST_TEST(blob->relocations.size() == tb::kRelocations.size());
  BOOST_REQUIRE(blob->entries.size() == 2u);
  BOOST_TEST(blob->entries[0].first == "test_add");
  BOOST_TEST(blob->entries[0].second == tb::kEntry_test_add);
  BOOST_TEST(blob->entries[1].second == tb::kEntry_test_apply);

  std::string header = crpp::blobtool::RenderHeader(*blob, "demo", "demo.elf");
  BOOST_TEST(Contains(header, "namespace crpp::blobs::demo {"));
  BOOST_TEST(Contains(header, "inline constexpr std::size_t kEntry_test_apply = 0x"));
  BOOST_TEST(Contains(header, "kRelocations"));
  BOOST_TEST(Contains(header, "#ifndef CRPP_BLOBS_DEMO_H_"));
}

BOOST_AUTO_TEST_CASE(refuses_an_undefined_libc_call) {
  std::string why = Refusal("bad_undefined.elf");
  BOOST_TEST(Contains(why, "undefined symbol memcpy"), why);
  BOOST_TEST(Contains(why, "R_X86_64_JUMP_SLOT at 0x"), why);
}

// With undefined symbols allowed, ld drops the name: the PLT and its empty
// relocation are what is left, and either refuses the blob.
BOOST_AUTO_TEST_CASE(refuses_a_call_through_an_empty_plt) {
  std::string why = Refusal("bad_undefined_pie.elf");
  BOOST_TEST(Contains(why, "has a PLT (.plt)"), why);
  BOOST_TEST(Contains(why, "unsupported relocation R_X86_64_NONE"), why);
}

BOOST_AUTO_TEST_CASE(refuses_an_interpreter_and_shared_libraries) {
  std::string why = Refusal("bad_libc.elf");
  BOOST_TEST(Contains(why, "PT_INTERP"), why);
  BOOST_TEST(Contains(why, "'libc.so.6' (DT_NEEDED)"), why);
  BOOST_TEST(Contains(why, "R_X86_64_JUMP_SLOT"), why);
}

BOOST_AUTO_TEST_CASE(refuses_relocations_other_than_relative) {
  std::string why = Refusal("bad_reloc.elf");
  BOOST_TEST(Contains(why, "unsupported relocation R_X86_64_64"), why);
  BOOST_TEST(Contains(why, "against 'shared_value'"), why);
  BOOST_TEST(Contains(why, "R_X86_64_GLOB_DAT"), why);
}

BOOST_AUTO_TEST_CASE(refuses_object_files) {
  BOOST_TEST(Contains(Refusal("bad_object.o"), "ET_REL"));
}

BOOST_AUTO_TEST_CASE(refuses_missing_or_non_code_entries) {
  std::string why = Refusal("test_blob.elf", {"no_such_entry", "test_bss_words"});
  BOOST_TEST(Contains(why, "entry symbol 'no_such_entry' is not defined"), why);
  BOOST_TEST(Contains(why, "entry symbol 'test_bss_words' is not in a code section"), why);
}

// Every prefix of a good file is a corrupt file: each must be an error, not a crash.
BOOST_AUTO_TEST_CASE(truncated_files_are_errors) {
  std::vector<unsigned char> elf = Runfile("test_blob.elf");
  for (size_t n = 0; n < elf.size(); n += 7) {
    std::vector<unsigned char> prefix(elf.begin(), elf.begin() + n);
    BOOST_TEST(!ReadLinkedBlob(prefix, {}).ok(), "prefix of " << n << " bytes accepted");
  }
}

BOOST_AUTO_TEST_CASE(identifiers) {
  BOOST_TEST(crpp::blobtool::IsIdentifier("restorer_blob"));
  BOOST_TEST(crpp::blobtool::IsIdentifier("_x1"));
  BOOST_TEST(!crpp::blobtool::IsIdentifier(""));
  BOOST_TEST(!crpp::blobtool::IsIdentifier("1x"));
  BOOST_TEST(!crpp::blobtool::IsIdentifier("a-b"));
}
