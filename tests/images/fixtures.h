// A fixture generator: writes the images of a small two-task dump, shaped as
// CRIU 4.x writes them, from known values. Tests decode these with crit and
// compare the JSON with what CRIU's crit prints for the same values.
#ifndef CRPP_TESTS_IMAGES_FIXTURES_H_
#define CRPP_TESTS_IMAGES_FIXTURES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace crpp::testing {

// Writes inventory, pstree, core, ids, mm, pagemap + pages, fs, files,
// fdinfo, sigacts, pipes-data, unixsk-in-files, inetsk, tcp-stream, ghost,
// ipcns-sem images into `dir` (which must exist).
absl::Status WriteFixtureDump(const std::string& dir);

// File names WriteFixtureDump writes that are protobuf images (not pages-*).
std::vector<std::string> FixtureImageNames();

// Sets every unset required field of msg (recursively) to a value derived
// from `seed` and the field number, so messages with many required fields
// (registers) can be built without spelling each one.
void FillRequired(google::protobuf::Message& msg, uint64_t seed);

}  // namespace crpp::testing

#endif  // CRPP_TESTS_IMAGES_FIXTURES_H_
