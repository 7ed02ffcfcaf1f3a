// crit: decode, encode and explore image files, with the command line and
// JSON of CRIU's crit.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/images/crit_codec.h"
#include "core/images/image_io.h"
#include "core/json.h"
#include "tools/crit/explore.h"

namespace crpp::crit {
namespace {

constexpr char kUsage[] =
    "usage: crit [-h] [--version] {decode,encode,info,x,show} ...\n"
    "\n"
    "  decode [--pretty] [-i IN] [-o OUT]   image -> JSON (stdin/stdout by default)\n"
    "  encode [-i IN] [-o OUT]              JSON -> image\n"
    "  show IN | -i IN [--nopl]             decode --pretty to stdout\n"
    "  info IN                              magic and number of entries\n"
    "  x DIR {ps,fds,mems,rss}              explore an image directory\n";

int Fail(const std::string& message) {
  fprintf(stderr, "crit: %s\n", message.c_str());
  return 1;
}

int Fail(const absl::Status& s) { return Fail(std::string(s.message())); }

struct Args {
  std::string in, out;
  bool pretty = false;
  bool nopl = false;
  std::vector<std::string> positional;
};

// Parses the options common to the subcommands; unknown ones are errors.
absl::StatusOr<Args> ParseArgs(const std::string& cmd, int argc, char** argv) {
  Args a;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> absl::StatusOr<std::string> {
      size_t eq = arg.find('=');
      if (arg.rfind("--", 0) == 0 && eq != std::string::npos) return arg.substr(eq + 1);
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: %s needs an argument", cmd, name));
      }
      return std::string(argv[++i]);
    };
    std::string key = arg.substr(0, arg.find('='));
    if (key == "-i" || key == "--in") {
      auto v = value("-i");
      if (!v.ok()) return v.status();
      a.in = *v;
    } else if (key == "-o" || key == "--out") {
      auto v = value("-o");
      if (!v.ok()) return v.status();
      a.out = *v;
    } else if (key == "-f" || key == "--format") {
      // Only JSON exists; the option is accepted because scripts pass it.
      auto v = value("-f");
      if (!v.ok()) return v.status();
      if (*v != "json") {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: unsupported format '%s' (only json)", cmd, *v));
      }
    } else if (arg == "--pretty" && (cmd == "decode" || cmd == "show")) {
      a.pretty = true;
    } else if (arg == "--nopl" && cmd == "show") {
      a.nopl = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      return absl::InvalidArgumentError(absl::StrFormat("%s: unknown option %s", cmd, arg));
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& name) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::InternalError(absl::StrFormat("%s: read failed: %s", name, strerror(errno)));
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& name) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return absl::InternalError(absl::StrFormat("%s: write failed: %s", name, strerror(errno)));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> OpenOut(const std::string& path) {
  if (path.empty()) return STDOUT_FILENO;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InvalidArgumentError(absl::StrFormat("%s: %s", path, strerror(errno)));
  return fd;
}

absl::StatusOr<std::unique_ptr<images::ImageReader>> OpenIn(const std::string& path) {
  if (path.empty()) return images::ImageReader::FromFd(STDIN_FILENO, "<stdin>");
  return images::ImageReader::Open(path);
}

int Decode(const Args& a, bool to_stdout_always) {
  auto reader = OpenIn(a.in);
  if (!reader.ok()) return Fail(reader.status());
  auto doc = images::DecodeImage(**reader, {.pretty = a.pretty, .no_payload = a.nopl});
  if (!doc.ok()) return Fail(doc.status());
  std::string text = doc->Dump(a.pretty ? 4 : -1);
  std::string out_path = to_stdout_always ? "" : a.out;
  // Like crit: a newline ends the output on stdout, not in a file.
  if (out_path.empty()) text.push_back('\n');
  auto fd = OpenOut(out_path);
  if (!fd.ok()) return Fail(fd.status());
  absl::Status s = WriteAll(*fd, text, out_path.empty() ? "<stdout>" : out_path);
  if (*fd != STDOUT_FILENO) close(*fd);
  return s.ok() ? 0 : Fail(s);
}

int Encode(const Args& a) {
  int in_fd = STDIN_FILENO;
  if (!a.in.empty()) {
    in_fd = open(a.in.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) return Fail(absl::StrFormat("%s: %s", a.in, strerror(errno)));
  }
  auto text = ReadAll(in_fd, a.in.empty() ? "<stdin>" : a.in);
  if (in_fd != STDIN_FILENO) close(in_fd);
  if (!text.ok()) return Fail(text.status());
  auto doc = Json::Parse(*text);
  if (!doc.ok()) {
    return Fail(absl::StrFormat("%s: cannot read JSON (encode expects crit's JSON): %s",
                                a.in.empty() ? "<stdin>" : a.in, doc.status().message()));
  }
  auto fd = OpenOut(a.out);
  if (!fd.ok()) return Fail(fd.status());
  absl::Status s = images::EncodeImage(*doc, *fd, a.out.empty() ? "<stdout>" : a.out);
  if (*fd != STDOUT_FILENO) close(*fd);
  if (!s.ok() && !a.out.empty()) unlink(a.out.c_str());  // no half-written image
  return s.ok() ? 0 : Fail(s);
}

int Info(const Args& a) {
  if (a.positional.size() != 1) return Fail("info: expected one image file");
  auto reader = images::ImageReader::Open(a.positional[0]);
  if (!reader.ok()) return Fail(reader.status());
  // Decoding (without payload contents) counts entries correctly even for
  // images whose entries are followed by payloads.
  auto doc = images::DecodeImage(**reader, {.pretty = false, .no_payload = true});
  if (!doc.ok()) return Fail(doc.status());
  size_t count = doc->Find("entries")->items().size();
  if (!(*reader)->kind().head_type.empty() && count > 0) --count;  // pagemap's head
  Json info = Json::Object();
  info.Set("magic", Json::String(std::string((*reader)->kind().name)));
  info.Set("count", Json::Uint(count));
  printf("%s\n", info.Dump(4).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    fputs(kUsage, stderr);
    return Fail("too few arguments");
  }
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help") {
    fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version") {
    printf("crit (crpp) 0.1, CRIU image format 1.1\n");
    return 0;
  }
  if (cmd == "x") {
    if (argc != 4) return Fail("x: usage: crit x DIR {ps,fds,mems,rss}");
    auto out = Explore(argv[2], argv[3]);
    if (!out.ok()) return Fail(out.status());
    fputs(out->c_str(), stdout);
    return 0;
  }
  auto args = ParseArgs(cmd, argc - 2, argv + 2);
  if (!args.ok()) return Fail(args.status());
  if (cmd == "decode") {
    if (!args->positional.empty())
      return Fail("decode: unexpected argument " + args->positional[0]);
    return Decode(*args, false);
  }
  if (cmd == "show") {
    // The image as an argument, or with -i as decode takes it (scripts write
    // `crit show -i files.img --pretty`).
    if (args->positional.size() + (args->in.empty() ? 0 : 1) != 1) {
      return Fail("show: expected one image file");
    }
    if (args->in.empty()) args->in = args->positional[0];
    args->pretty = true;
    return Decode(*args, true);
  }
  if (cmd == "encode") {
    if (!args->positional.empty())
      return Fail("encode: unexpected argument " + args->positional[0]);
    return Encode(*args);
  }
  if (cmd == "info") return Info(*args);
  fputs(kUsage, stderr);
  return Fail("unknown command " + cmd);
}

}  // namespace
}  // namespace crpp::crit

int main(int argc, char** argv) { return crpp::crit::Main(argc, argv); }
