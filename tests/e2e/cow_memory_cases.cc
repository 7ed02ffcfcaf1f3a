// End-to-end cases of memory a fork left shared copy-on-write (cow_memory.cc):
// part of the e2e_cases library, one Bazel test each, like e2e_test.cc.
#include <boost/test/unit_test.hpp>

#include "tests/e2e/cases.h"
#include "tests/e2e/harness.h"

namespace {

using crpp::e2e::Cycles;
using crpp::e2e::DumpRestoreVerify;
using crpp::e2e::LeaveRunning;
using crpp::e2e::Session;

}  // namespace

// Private memory a fork left shared copy-on-write in a tree of three, each
// with pages of its own (cow_memory.cc): restored with the same contents and
// shared again, not one copy per process.
BOOST_AUTO_TEST_CASE(cow_memory) {
  Session s("cow_memory");
  DumpRestoreVerify(s);
}

// dump -R must leave the running tree's pages shared too.
BOOST_AUTO_TEST_CASE(cow_memory_leave_running) {
  Session s("cow_memory_leave_running", "cow_memory");
  LeaveRunning(s);
}

// Each restore's sharing is what the next dump finds: still shared after 20.
BOOST_AUTO_TEST_CASE(cow_memory_cycles) {
  Session s("cow_memory_cycles", "cow_memory");
  Cycles(s);
}
