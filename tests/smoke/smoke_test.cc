#define BOOST_TEST_MODULE smoke
#include <boost/test/unit_test.hpp>
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
BOOST_AUTO_TEST_CASE(works) {
  absl::StatusOr<int> v = 3;
  BOOST_TEST(absl::StrFormat("%d", *v) == "3");
}
