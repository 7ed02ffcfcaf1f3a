#include "core/images/pretty_tables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "core/strings.h"

namespace crpp::images::pretty {
namespace {

struct Flag {
  std::string_view name;
  uint64_t bit;
};
struct FlagTable {
  std::string_view name;
  const Flag* flags;
  size_t count;
};

// Names and bits as crit prints them (upstream CRIU 4.x), in crit's order.
constexpr Flag kMmapProt[] = {{"PROT_READ", 0x1}, {"PROT_WRITE", 0x2}, {"PROT_EXEC", 0x4}};
constexpr Flag kMmapFlags[] = {{"MAP_SHARED", 0x1},
                               {"MAP_PRIVATE", 0x2},
                               {"MAP_DROPPABLE", 0x8},
                               {"MAP_ANON", 0x20},
                               {"MAP_GROWSDOWN", 0x100}};
constexpr Flag kMmapStatus[] = {
    {"VMA_AREA_NONE", 0},           {"VMA_AREA_REGULAR", 1u << 0},  {"VMA_AREA_STACK", 1u << 1},
    {"VMA_AREA_VSYSCALL", 1u << 2}, {"VMA_AREA_VDSO", 1u << 3},     {"VMA_AREA_HEAP", 1u << 5},
    {"VMA_FILE_PRIVATE", 1u << 6},  {"VMA_FILE_SHARED", 1u << 7},   {"VMA_ANON_SHARED", 1u << 8},
    {"VMA_ANON_PRIVATE", 1u << 9},  {"VMA_AREA_SYSVIPC", 1u << 10}, {"VMA_AREA_SOCKET", 1u << 11},
    {"VMA_AREA_VVAR", 1u << 12},    {"VMA_AREA_AIORING", 1u << 13}, {"VMA_AREA_MEMFD", 1u << 14},
    {"VMA_AREA_SHSTK", 1u << 15},   {"VMA_AREA_UPROBES", 1u << 17}, {"VMA_UNSUPP", 1u << 31},
};
constexpr Flag kRfileFlags[] = {
    {"O_WRONLY", 01},         {"O_RDWR", 02},          {"O_CREAT", 0100},
    {"O_EXCL", 0200},         {"O_NOCTTY", 0400},      {"O_TRUNC", 01000},
    {"O_APPEND", 02000},      {"O_NONBLOCK", 04000},   {"O_DSYNC", 010000},
    {"FASYNC", 020000},       {"O_DIRECT", 040000},    {"O_LARGEFILE", 0100000},
    {"O_DIRECTORY", 0200000}, {"O_NOFOLLOW", 0400000}, {"O_NOATIME", 01000000},
    {"O_CLOEXEC", 02000000},
};
// CRPP_PE_SHARED is crpp's own (resources/mm/memory.h: kPeShared).
constexpr Flag kPmapFlags[] = {
    {"PE_PARENT", 1}, {"PE_LAZY", 2}, {"PE_PRESENT", 4}, {"CRPP_PE_SHARED", 1u << 16}};
constexpr Flag kSealsFlags[] = {{"F_SEAL_SEAL", 1},
                                {"F_SEAL_SHRINK", 2},
                                {"F_SEAL_GROW", 4},
                                {"F_SEAL_WRITE", 8},
                                {"F_SEAL_FUTURE_WRITE", 0x10}};

constexpr FlagTable kFlagTables[] = {
    {"mmap.prot", kMmapProt, std::size(kMmapProt)},
    {"mmap.flags", kMmapFlags, std::size(kMmapFlags)},
    {"mmap.status", kMmapStatus, std::size(kMmapStatus)},
    {"rfile.flags", kRfileFlags, std::size(kRfileFlags)},
    {"pmap.flags", kPmapFlags, std::size(kPmapFlags)},
    {"seals.flags", kSealsFlags, std::size(kSealsFlags)},
};

const FlagTable* FindTable(std::string_view name) {
  for (const FlagTable& t : kFlagTables) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

struct DictEntry {
  std::string_view dict;
  std::string_view field;
  uint64_t value;
  std::string_view name;
};

constexpr DictEntry kDicts[] = {
    // Task states as compel reports them.
    {"gen", "task_state", 1, "Alive"},
    {"gen", "task_state", 2, "Dead"},
    {"gen", "task_state", 3, "Stopped"},
    {"gen", "task_state", 6, "Zombie"},
    {"sk", "family", 1, "UNIX"},
    {"sk", "family", 2, "INET"},
    {"sk", "family", 10, "INET6"},
    {"sk", "family", 16, "NETLINK"},
    {"sk", "family", 17, "PACKET"},
    {"sk", "type", 1, "STREAM"},
    {"sk", "type", 2, "DGRAM"},
    {"sk", "type", 3, "RAW"},
    {"sk", "type", 5, "SEQPACKET"},
    {"sk", "type", 10, "PACKET"},
    {"sk", "state", 1, "ESTABLISHED"},
    {"sk", "state", 2, "SYN_SENT"},
    {"sk", "state", 3, "SYN_RECV"},
    {"sk", "state", 4, "FIN_WAIT1"},
    {"sk", "state", 5, "FIN_WAIT2"},
    {"sk", "state", 6, "TIME_WAIT"},
    {"sk", "state", 7, "CLOSE"},
    {"sk", "state", 8, "CLOSE_WAIT"},
    {"sk", "state", 9, "LAST_ACK"},
    {"sk", "state", 10, "LISTEN"},
    {"sk", "proto", 0, "IP"},
    {"sk", "proto", 6, "TCP"},
    {"sk", "proto", 17, "UDP"},
    {"sk", "proto", 136, "UDPLITE"},
};

}  // namespace

absl::StatusOr<int64_t> ParseIntAuto(std::string_view text) {
  std::string_view t = Trim(text);
  bool neg = false;
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
    neg = t[0] == '-';
    t.remove_prefix(1);
  }
  int base = 10;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    base = 16;
  } else if (t.size() > 2 && t[0] == '0' && (t[1] == 'o' || t[1] == 'O')) {
    base = 8;
  } else if (t.size() > 2 && t[0] == '0' && (t[1] == 'b' || t[1] == 'B')) {
    base = 2;
  }
  if (base != 10) t.remove_prefix(2);
  if (t.empty()) return absl::InvalidArgumentError(absl::StrFormat("'%s' is not a number", text));
  uint64_t v = 0;
  for (char c : t) {
    int d = isdigit(static_cast<unsigned char>(c)) ? c - '0'
            : isxdigit(static_cast<unsigned char>(c))
                ? tolower(static_cast<unsigned char>(c)) - 'a' + 10
                : 99;
    if (c == '_') continue;  // Python allows 1_000
    if (d >= base) return absl::InvalidArgumentError(absl::StrFormat("'%s' is not a number", text));
    if (v > (UINT64_MAX - d) / base) {
      return absl::OutOfRangeError(absl::StrFormat("'%s' does not fit in 64 bits", text));
    }
    v = v * base + d;
  }
  // Values above INT64_MAX come back as their two's complement; callers cast
  // to the field's width, as the wire format does.
  return neg ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
}

bool FormatFlags(std::string_view table, uint64_t value, std::string& out) {
  const FlagTable* t = FindTable(table);
  if (t == nullptr) return false;
  out.clear();
  uint64_t rest = value;
  for (size_t i = 0; i < t->count; ++i) {
    const Flag& f = t->flags[i];
    if (f.bit != 0 && (value & f.bit) == f.bit) {
      if (!out.empty()) out += " | ";
      out += f.name;
      rest &= ~f.bit;
    }
  }
  if (rest != 0) {
    if (!out.empty()) out += " | ";
    absl::StrAppendFormat(&out, "0x%x", rest);
  }
  return true;
}

absl::StatusOr<uint64_t> ParseFlags(std::string_view table, std::string_view text) {
  const FlagTable* t = FindTable(table);
  uint64_t value = 0;
  if (Trim(text).empty()) return value;
  for (std::string_view token : Split(text, '|')) {
    token = Trim(token);
    bool found = false;
    for (size_t i = 0; t != nullptr && i < t->count; ++i) {
      if (t->flags[i].name == token) {
        value += t->flags[i].bit;
        found = true;
        break;
      }
    }
    if (found) continue;
    auto n = ParseIntAuto(token);
    if (!n.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("'%s' is neither a %s flag nor a number", token, table));
    }
    value += static_cast<uint64_t>(*n);
  }
  return value;
}

bool FormatDict(std::string_view dict, std::string_view field, uint64_t value, std::string& out) {
  for (const DictEntry& e : kDicts) {
    if (e.dict == dict && e.field == field && e.value == value) {
      out = std::string(e.name);
      return true;
    }
  }
  return false;
}

bool ParseDict(std::string_view dict, std::string_view field, std::string_view name,
               uint64_t& out) {
  for (const DictEntry& e : kDicts) {
    if (e.dict == dict && e.field == field && e.name == name) {
      out = e.value;
      return true;
    }
  }
  return false;
}

std::string FormatDev(uint64_t v, bool old_encoding) {
  uint64_t major, minor;
  if (old_encoding) {  // glibc's dev_t layout
    major = ((v >> 8) & 0xfff) | ((v >> 32) & ~0xfffull);
    minor = (v & 0xff) | ((v >> 12) & ~0xffull);
  } else {  // the kernel's internal layout: 12 bits of major over 20 of minor
    major = v >> 20;
    minor = v & 0xfffff;
  }
  return absl::StrFormat("%d:%d", major, minor);
}

absl::StatusOr<uint64_t> ParseDev(std::string_view text, bool old_encoding) {
  std::vector<std::string_view> parts = Split(text, ':');
  uint64_t major, minor;
  if (parts.size() != 2 || !ParseInt(parts[0], major) || !ParseInt(parts[1], minor)) {
    return absl::InvalidArgumentError(absl::StrFormat("'%s' is not MAJOR:MINOR", text));
  }
  if (old_encoding) {
    return ((major & 0xfff) << 8) | ((major & ~0xfffull) << 32) | (minor & 0xff) |
           ((minor & ~0xffull) << 12);
  }
  return (major << 20) | minor;
}

absl::StatusOr<std::string> FormatIp(const std::vector<uint32_t>& words) {
  char buf[INET6_ADDRSTRLEN];
  if (words.size() == 1) {
    // The word holds the address bytes in memory order, as inet_ntop wants.
    if (inet_ntop(AF_INET, &words[0], buf, sizeof buf) == nullptr) {
      return absl::InternalError("inet_ntop failed");
    }
    return std::string(buf);
  }
  if (words.size() < 4) {
    return absl::InvalidArgumentError(
        absl::StrFormat("an IP address has 1 or 4 words, not %d", words.size()));
  }
  uint8_t bytes[16];
  memcpy(bytes, words.data(), 16);
  // Python's compressed form: longest run (first on ties) of >= 2 zero groups.
  uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>(bytes[2 * i] << 8 | bytes[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    absl::StrAppendFormat(&out, "%x", g[i]);
  }
  return out;
}

absl::StatusOr<std::vector<uint32_t>> ParseIp(std::string_view text) {
  std::string s(text);
  uint32_t v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) return std::vector<uint32_t>{v4};
  uint32_t v6[4];
  if (inet_pton(AF_INET6, s.c_str(), v6) == 1) return std::vector<uint32_t>(v6, v6 + 4);
  return absl::InvalidArgumentError(absl::StrFormat("'%s' is not an IP address", text));
}

std::string Base64Lines(std::string_view bytes) {
  std::string flat = absl::Base64Escape(ToAbsl(bytes));
  std::string out;
  out.reserve(flat.size() + flat.size() / 76 + 1);
  for (size_t i = 0; i < flat.size(); i += 76) {
    out.append(flat, i, 76);
    out.push_back('\n');
  }
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text) {
  std::string compact;
  compact.reserve(text.size());
  for (char c : text) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') compact.push_back(c);
  }
  std::string out;
  if (!absl::Base64Unescape(compact, &out)) {
    return absl::InvalidArgumentError("bad base64 data");
  }
  return out;
}

std::string QuotedPrintable(std::string_view in) {
  constexpr size_t kMaxLine = 76;
  size_t nl = in.find('\n');
  bool crlf = nl != std::string_view::npos && nl > 0 && in[nl - 1] == '\r';
  std::string_view eol = crlf ? "\r\n" : "\n";
  std::string out;
  size_t ll = 0;
  auto hex = [&out](unsigned char c) { absl::StrAppendFormat(&out, "=%02X", c); };
  for (size_t i = 0; i < in.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    bool last = i + 1 == in.size();
    if (c == '\n' || (c == '\r' && i + 1 < in.size() && in[i + 1] == '\n')) {
      if (c == '\r') ++i;
      ll = 0;
      if (!out.empty() && (out.back() == ' ' || out.back() == '\t')) {
        unsigned char ws = static_cast<unsigned char>(out.back());
        out.pop_back();
        hex(ws);
      }
      out += eol;
      continue;
    }
    bool next_breaks = !last && (in[i + 1] == '\n' || in[i + 1] == '\r' || in[i + 1] == '\0');
    bool encode = c > 126 || c == '=' || (c == '.' && ll == 0 && (last || next_breaks)) ||
                  ((c == ' ' || c == '\t') && last) ||
                  (c < 33 && c != '\r' && c != '\t' && c != ' ');
    if (encode) {
      if (ll + 3 >= kMaxLine) {
        out += '=';
        out += eol;
        ll = 0;
      }
      hex(c);
      ll += 3;
      continue;
    }
    if (!last && in[i + 1] != '\n' && ll + 1 >= kMaxLine) {
      out += '=';
      out += eol;
      ll = 0;
    }
    out.push_back(static_cast<char>(c));
    ll += 1;
  }
  return out;
}

std::string QuotedPrintableDecode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 1 < in.size() && in[i + 1] == '\n') {  // soft line break
      i += 1;
      continue;
    }
    if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') {
      i += 2;
      continue;
    }
    if (i + 2 < in.size() && isxdigit(static_cast<unsigned char>(in[i + 1])) &&
        isxdigit(static_cast<unsigned char>(in[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
      continue;
    }
    out.push_back('=');
  }
  return out;
}

}  // namespace crpp::images::pretty
