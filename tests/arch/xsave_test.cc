#define BOOST_TEST_MODULE xsave
#include "arch/x86_64/xsave.h"

#include <boost/test/unit_test.hpp>

BOOST_AUTO_TEST_CASE(layout_is_read_from_the_cpu) {
  auto layout = crpp::arch::ReadXsaveLayout();
  BOOST_REQUIRE_MESSAGE(layout.ok(), layout.status().message());
  BOOST_TEST(layout->enabled_size >= crpp::arch::kXsaveMinSize);
  BOOST_TEST(layout->enabled_size <= layout->max_size);
  BOOST_TEST((layout->xcr0 & 0x3) == 0x3u);  // x87 and SSE state are always enabled
  // AVX state (bit 2) lives at offset 576 and takes 256 bytes.
  if (layout->xcr0 & 0x4) BOOST_TEST(layout->enabled_size >= 832u);
}
