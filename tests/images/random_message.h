// Fills a protobuf message with random values in every field, for round-trip
// tests over all image messages.
#ifndef CRPP_TESTS_IMAGES_RANDOM_MESSAGE_H_
#define CRPP_TESTS_IMAGES_RANDOM_MESSAGE_H_

#include <random>

#include "google/protobuf/message.h"

namespace crpp::testing {

// Sets every field (repeated ones get 1..3 elements; nested messages down to
// `depth` levels). Fields marked ipadd get 1 or 4 words, as real addresses do.
void FillRandom(google::protobuf::Message& msg, std::mt19937_64& rng, int depth = 4);

}  // namespace crpp::testing

#endif  // CRPP_TESTS_IMAGES_RANDOM_MESSAGE_H_
