// The symbolic forms crit prints in --pretty mode: flag tables, value
// dictionaries, device numbers, IP addresses and the quoted-printable form of
// unix socket names. Each conversion has its inverse for `crit encode`.
#ifndef CRPP_CORE_IMAGES_PRETTY_TABLES_H_
#define CRPP_CORE_IMAGES_PRETTY_TABLES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace crpp::images::pretty {

// "PROT_READ | PROT_WRITE | 0x8" for table "mmap.prot"; "" for 0. Returns
// false when the table is unknown.
bool FormatFlags(std::string_view table, uint64_t value, std::string& out);
absl::StatusOr<uint64_t> ParseFlags(std::string_view table, std::string_view text);

// Value names of (criu).dict tables, keyed by field name ("gen"/"task_state").
// Returns false when there is no name for the value.
bool FormatDict(std::string_view dict, std::string_view field, uint64_t value, std::string& out);
bool ParseDict(std::string_view dict, std::string_view field, std::string_view name, uint64_t& out);

// "MAJOR:MINOR" of a kernel (new) or glibc (old, `odev`) encoded dev_t.
std::string FormatDev(uint64_t value, bool old_encoding);
absl::StatusOr<uint64_t> ParseDev(std::string_view text, bool old_encoding);

// One u32 word is IPv4, four are IPv6 (words hold network-order bytes).
absl::StatusOr<std::string> FormatIp(const std::vector<uint32_t>& words);
absl::StatusOr<std::vector<uint32_t>> ParseIp(std::string_view text);

// Python's base64.encodebytes: a newline after every 76 characters and at the end.
std::string Base64Lines(std::string_view bytes);
absl::StatusOr<std::string> Base64Decode(std::string_view text);

// Python's quopri.encodestring (unix socket names).
std::string QuotedPrintable(std::string_view bytes);
std::string QuotedPrintableDecode(std::string_view text);

// Python int(text, 0): "0x1f", "0o17", "0b101", "42", with an optional sign.
absl::StatusOr<int64_t> ParseIntAuto(std::string_view text);

}  // namespace crpp::images::pretty

#endif  // CRPP_CORE_IMAGES_PRETTY_TABLES_H_
