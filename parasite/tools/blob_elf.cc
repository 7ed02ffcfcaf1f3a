#include "parasite/tools/blob_elf.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace crpp::blobtool {
namespace {

// A blob is a few KiB; this only stops a corrupt size from allocating gigabytes.
constexpr uint64_t kMaxMemSize = 64ull << 20;

using Bytes = std::span<const unsigned char>;

// Copies a T out of the file at `off`, or fails when the file is too short:
// every offset and count in the headers is untrusted input.
template <class T>
absl::StatusOr<T> ReadAt(Bytes file, uint64_t off) {
  if (off > file.size() || file.size() - off < sizeof(T)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("truncated ELF: %u bytes at offset 0x%x", sizeof(T), off));
  }
  T value;
  std::memcpy(&value, file.data() + off, sizeof(T));
  return value;
}

absl::Status CheckRange(Bytes file, uint64_t off, uint64_t size, const char* what) {
  if (off > file.size() || file.size() - off < size) {
    return absl::InvalidArgumentError(absl::StrCat("truncated ELF: ", what, " lies past the end"));
  }
  return absl::OkStatus();
}

std::string RelocName(uint32_t type) {
  static const std::map<uint32_t, const char*> kNames = {
      {R_X86_64_NONE, "R_X86_64_NONE"},         {R_X86_64_64, "R_X86_64_64"},
      {R_X86_64_PC32, "R_X86_64_PC32"},         {R_X86_64_COPY, "R_X86_64_COPY"},
      {R_X86_64_GLOB_DAT, "R_X86_64_GLOB_DAT"}, {R_X86_64_JUMP_SLOT, "R_X86_64_JUMP_SLOT"},
      {R_X86_64_RELATIVE, "R_X86_64_RELATIVE"}, {R_X86_64_32, "R_X86_64_32"},
      {R_X86_64_DTPMOD64, "R_X86_64_DTPMOD64"}, {R_X86_64_DTPOFF64, "R_X86_64_DTPOFF64"},
      {R_X86_64_TPOFF64, "R_X86_64_TPOFF64"},   {R_X86_64_IRELATIVE, "R_X86_64_IRELATIVE"},
      {R_X86_64_TLSDESC, "R_X86_64_TLSDESC"},
  };
  auto it = kNames.find(type);
  return it != kNames.end() ? it->second : absl::StrCat("relocation type ", type);
}

struct Symbol {
  std::string name;
  uint64_t value;
  uint16_t shndx;
};

// The parse state: the file, its section headers, and the problems found so
// far (reported together, so one build failure names all of them).
class Reader {
 public:
  explicit Reader(Bytes file) : file_(file) {}

  absl::StatusOr<LinkedBlob> Read(std::span<const std::string> entries);

 private:
  absl::Status ReadHeaders();
  absl::Status ReadSegments(LinkedBlob& blob);
  absl::Status ReadSections(LinkedBlob& blob);
  absl::StatusOr<std::vector<Symbol>> ReadSymbols(const Elf64_Shdr& table);
  absl::StatusOr<std::string> StringAt(const Elf64_Shdr& strtab, uint64_t index);
  absl::Status ReadRelocations(const Elf64_Shdr& rela, LinkedBlob& blob);
  absl::Status ReadDynamic(const Elf64_Shdr& dynamic);
  void ResolveEntries(std::span<const std::string> names, LinkedBlob& blob);

  Bytes file_;
  Elf64_Ehdr ehdr_{};
  std::vector<Elf64_Shdr> sections_;
  std::vector<Symbol> symtab_;  // the static symbol table: entries are looked up here
  std::vector<std::string> problems_;
};

absl::Status Reader::ReadHeaders() {
  auto ehdr = ReadAt<Elf64_Ehdr>(file_, 0);
  if (!ehdr.ok()) return absl::InvalidArgumentError("not an ELF file (too short)");
  ehdr_ = *ehdr;
  if (std::memcmp(ehdr_.e_ident, ELFMAG, SELFMAG) != 0) {
    return absl::InvalidArgumentError("not an ELF file");
  }
  if (ehdr_.e_ident[EI_CLASS] != ELFCLASS64 || ehdr_.e_ident[EI_DATA] != ELFDATA2LSB ||
      ehdr_.e_machine != EM_X86_64) {
    return absl::InvalidArgumentError("not a little-endian ELF64 x86-64 file");
  }
  if (ehdr_.e_type == ET_REL) {
    return absl::InvalidArgumentError("an object file (ET_REL), not a linked blob");
  }
  if (ehdr_.e_type != ET_DYN) {
    return absl::InvalidArgumentError(
        "not position independent (ELF type is not ET_DYN): link blobs with -pie");
  }
  if (ehdr_.e_phentsize != sizeof(Elf64_Phdr) || ehdr_.e_shentsize != sizeof(Elf64_Shdr)) {
    return absl::InvalidArgumentError("unexpected program or section header size");
  }
  if (ehdr_.e_shnum == 0) {
    return absl::InvalidArgumentError("no section headers (was it stripped?)");
  }
  for (uint64_t i = 0; i < ehdr_.e_shnum; ++i) {
    auto shdr = ReadAt<Elf64_Shdr>(file_, ehdr_.e_shoff + i * sizeof(Elf64_Shdr));
    if (!shdr.ok()) return shdr.status();
    sections_.push_back(*shdr);
  }
  return absl::OkStatus();
}

absl::Status Reader::ReadSegments(LinkedBlob& blob) {
  uint64_t image_end = 0;
  uint64_t min_vaddr = UINT64_MAX;
  std::vector<Elf64_Phdr> loads;
  for (uint64_t i = 0; i < ehdr_.e_phnum; ++i) {
    auto phdr = ReadAt<Elf64_Phdr>(file_, ehdr_.e_phoff + i * sizeof(Elf64_Phdr));
    if (!phdr.ok()) return phdr.status();
    switch (phdr->p_type) {
      case PT_INTERP:
        problems_.push_back(
            "has an interpreter (PT_INTERP): it asks for the dynamic loader; "
            "blobs are linked with --no-dynamic-linker");
        break;
      case PT_TLS:
        problems_.push_back("uses thread-local storage (PT_TLS): a blob has no TLS");
        break;
      case PT_LOAD:
        if (phdr->p_filesz > phdr->p_memsz || phdr->p_memsz > kMaxMemSize ||
            phdr->p_vaddr > kMaxMemSize - phdr->p_memsz) {
          return absl::InvalidArgumentError("a PT_LOAD segment has an impossible size");
        }
        if (absl::Status s = CheckRange(file_, phdr->p_offset, phdr->p_filesz, "a PT_LOAD");
            !s.ok()) {
          return s;
        }
        loads.push_back(*phdr);
        min_vaddr = std::min(min_vaddr, phdr->p_vaddr);
        image_end = std::max(image_end, phdr->p_vaddr + phdr->p_filesz);
        blob.mem_size = std::max(blob.mem_size, phdr->p_vaddr + phdr->p_memsz);
        break;
      default:
        break;
    }
  }
  if (loads.empty() || image_end == 0) {
    return absl::InvalidArgumentError("no loadable contents (no PT_LOAD with file bytes)");
  }
  if (min_vaddr != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the image starts at 0x%x, not 0: link with parasite/blob.ld", min_vaddr));
  }
  blob.image.assign(image_end, 0);
  for (const Elf64_Phdr& load : loads) {
    std::memcpy(blob.image.data() + load.p_vaddr, file_.data() + load.p_offset, load.p_filesz);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Reader::StringAt(const Elf64_Shdr& strtab, uint64_t index) {
  if (strtab.sh_type != SHT_STRTAB || index >= strtab.sh_size) {
    return absl::InvalidArgumentError("bad string table reference");
  }
  if (absl::Status s = CheckRange(file_, strtab.sh_offset, strtab.sh_size, "a string table");
      !s.ok()) {
    return s;
  }
  const char* begin = reinterpret_cast<const char*>(file_.data() + strtab.sh_offset);
  const char* end = static_cast<const char*>(std::memchr(begin + index, 0, strtab.sh_size - index));
  if (end == nullptr) return absl::InvalidArgumentError("unterminated string in a string table");
  return std::string(begin + index, end);
}

absl::StatusOr<std::vector<Symbol>> Reader::ReadSymbols(const Elf64_Shdr& table) {
  if (table.sh_entsize != sizeof(Elf64_Sym) || table.sh_link >= sections_.size()) {
    return absl::InvalidArgumentError("malformed symbol table");
  }
  std::vector<Symbol> symbols;
  for (uint64_t i = 1; i < table.sh_size / sizeof(Elf64_Sym); ++i) {  // 0 is the null symbol
    auto sym = ReadAt<Elf64_Sym>(file_, table.sh_offset + i * sizeof(Elf64_Sym));
    if (!sym.ok()) return sym.status();
    auto name = StringAt(sections_[table.sh_link], sym->st_name);
    if (!name.ok()) return name.status();
    symbols.push_back({*std::move(name), sym->st_value, sym->st_shndx});
  }
  return symbols;
}

absl::Status Reader::ReadRelocations(const Elf64_Shdr& rela, LinkedBlob& blob) {
  if (rela.sh_entsize != sizeof(Elf64_Rela)) return absl::InvalidArgumentError("malformed RELA");
  // The symbol a relocation refers to, for the message (dynsym, via sh_link).
  std::vector<Symbol> symbols;
  if (rela.sh_link != 0 && rela.sh_link < sections_.size() &&
      sections_[rela.sh_link].sh_type == SHT_DYNSYM) {
    auto syms = ReadSymbols(sections_[rela.sh_link]);
    if (!syms.ok()) return syms.status();
    symbols = *std::move(syms);
  }
  for (uint64_t i = 0; i < rela.sh_size / sizeof(Elf64_Rela); ++i) {
    auto r = ReadAt<Elf64_Rela>(file_, rela.sh_offset + i * sizeof(Elf64_Rela));
    if (!r.ok()) return r.status();
    const uint32_t type = ELF64_R_TYPE(r->r_info);
    const uint32_t sym = ELF64_R_SYM(r->r_info);
    if (type != R_X86_64_RELATIVE || sym != 0) {
      std::string against;
      if (sym != 0 && sym - 1 < symbols.size()) {
        against = absl::StrCat(" against '", symbols[sym - 1].name, "'");
      }
      problems_.push_back(absl::StrFormat(
          "unsupported relocation %s at 0x%x%s: a blob may only need R_X86_64_RELATIVE",
          RelocName(type), r->r_offset, against));
      continue;
    }
    if (r->r_offset > blob.image.size() || blob.image.size() - r->r_offset < 8) {
      problems_.push_back(
          absl::StrFormat("R_X86_64_RELATIVE at 0x%x is outside the image", r->r_offset));
      continue;
    }
    // Store the addend in the word itself: the loader then only adds the base.
    const uint64_t addend = static_cast<uint64_t>(r->r_addend);
    std::memcpy(blob.image.data() + r->r_offset, &addend, sizeof(addend));
    blob.relocations.push_back(r->r_offset);
  }
  return absl::OkStatus();
}

// A DT_NEEDED entry means the linker resolved something against a shared
// library, which nobody will load for a blob.
absl::Status Reader::ReadDynamic(const Elf64_Shdr& dynamic) {
  if (dynamic.sh_link >= sections_.size()) return absl::InvalidArgumentError("bad .dynamic");
  for (uint64_t i = 0; i < dynamic.sh_size / sizeof(Elf64_Dyn); ++i) {
    auto dyn = ReadAt<Elf64_Dyn>(file_, dynamic.sh_offset + i * sizeof(Elf64_Dyn));
    if (!dyn.ok()) return dyn.status();
    if (dyn->d_tag == DT_NULL) break;
    if (dyn->d_tag != DT_NEEDED) continue;
    auto library = StringAt(sections_[dynamic.sh_link], dyn->d_un.d_val);
    problems_.push_back(absl::StrCat("depends on shared library '", library.ok() ? *library : "?",
                                     "' (DT_NEEDED): a blob must be self-contained"));
  }
  return absl::OkStatus();
}

absl::Status Reader::ReadSections(LinkedBlob& blob) {
  std::vector<std::string> undefined;
  for (const Elf64_Shdr& s : sections_) {
    if (s.sh_flags & SHF_ALLOC) blob.align = std::max<uint64_t>(blob.align, s.sh_addralign);
    // ld links a call to an undefined function through a PLT; with undefined
    // symbols allowed in a PIE it even drops the symbol and leaves the PLT
    // pointing nowhere, so the PLT is the one trace of such a call.
    if (ehdr_.e_shstrndx < sections_.size() && s.sh_size > 0) {
      auto name = StringAt(sections_[ehdr_.e_shstrndx], s.sh_name);
      if (name.ok() && (*name == ".plt" || name->starts_with(".plt.") || *name == ".iplt")) {
        problems_.push_back(
            absl::StrCat("has a PLT (", *name,
                         "): code calls a function the blob does not define (was it linked with "
                         "undefined symbols allowed?)"));
      }
    }
    switch (s.sh_type) {
      case SHT_SYMTAB:
      case SHT_DYNSYM: {
        auto symbols = ReadSymbols(s);
        if (!symbols.ok()) return symbols.status();
        for (const Symbol& sym : *symbols) {
          if (sym.shndx == SHN_UNDEF && !sym.name.empty() &&
              std::find(undefined.begin(), undefined.end(), sym.name) == undefined.end()) {
            undefined.push_back(sym.name);
          }
        }
        if (s.sh_type == SHT_SYMTAB) symtab_ = *std::move(symbols);
        break;
      }
      case SHT_RELA:
        // Only allocated RELA sections are applied at load time; others
        // (from --emit-relocs) describe what the linker already resolved.
        if (s.sh_flags & SHF_ALLOC) {
          if (absl::Status st = ReadRelocations(s, blob); !st.ok()) return st;
        }
        break;
      case SHT_REL:
        problems_.push_back("has REL relocations: x86-64 blobs use RELA only");
        break;
      case SHT_DYNAMIC:
        if (absl::Status st = ReadDynamic(s); !st.ok()) return st;
        break;
      default:
        break;
    }
  }
  if (!undefined.empty()) {
    problems_.push_back(absl::StrCat(
        "undefined symbol", undefined.size() > 1 ? "s " : " ", absl::StrJoin(undefined, ", "),
        ": a blob has no libc or loader to provide them; define them in the blob"));
  }
  std::sort(blob.relocations.begin(), blob.relocations.end());
  return absl::OkStatus();
}

void Reader::ResolveEntries(std::span<const std::string> names, LinkedBlob& blob) {
  for (const std::string& name : names) {
    const Symbol* found = nullptr;
    bool ambiguous = false;
    for (const Symbol& sym : symtab_) {
      if (sym.name != name || sym.shndx == SHN_UNDEF) continue;
      if (found != nullptr && found->value != sym.value) ambiguous = true;
      found = &sym;
    }
    if (found == nullptr) {
      problems_.push_back(absl::StrCat("entry symbol '", name, "' is not defined"));
    } else if (ambiguous) {
      problems_.push_back(absl::StrCat("entry symbol '", name, "' is defined more than once"));
    } else if (found->shndx >= sections_.size() ||
               !(sections_[found->shndx].sh_flags & SHF_EXECINSTR)) {
      problems_.push_back(absl::StrCat("entry symbol '", name, "' is not in a code section"));
    } else {
      blob.entries.emplace_back(name, found->value);
    }
  }
}

absl::StatusOr<LinkedBlob> Reader::Read(std::span<const std::string> entries) {
  LinkedBlob blob;
  if (absl::Status s = ReadHeaders(); !s.ok()) return s;
  if (absl::Status s = ReadSegments(blob); !s.ok()) return s;
  if (absl::Status s = ReadSections(blob); !s.ok()) return s;
  ResolveEntries(entries, blob);
  if (!problems_.empty()) return absl::FailedPreconditionError(absl::StrJoin(problems_, "\n"));
  return blob;
}

}  // namespace

absl::StatusOr<LinkedBlob> ReadLinkedBlob(std::span<const unsigned char> elf,
                                          std::span<const std::string> entries) {
  return Reader(elf).Read(entries);
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  });
}

std::string RenderHeader(const LinkedBlob& blob, std::string_view name_view,
                         std::string_view source_view) {
  // absl here is built with its own string_view type: hand it std::strings.
  const std::string name(name_view);
  const std::string source(source_view);
  std::string guard = absl::StrCat("CRPP_BLOBS_", name, "_H_");
  std::transform(guard.begin(), guard.end(), guard.begin(),
                 [](char c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; });
  std::string out = absl::StrCat("// Generated by //parasite/tools:blob2h from ", source,
                                 ". Do not edit.\n#ifndef ", guard, "\n#define ", guard,
                                 "\n\n#include <array>\n#include <cstddef>\n\n"
                                 "#include \"parasite/blob_loader.h\"\n\n"
                                 "namespace crpp::blobs::",
                                 name, " {\n\n");
  absl::StrAppend(&out, "inline constexpr unsigned char kImage[] = {");
  for (size_t i = 0; i < blob.image.size(); ++i) {
    absl::StrAppend(&out, i % 16 == 0 ? "\n    " : " ", absl::StrFormat("0x%02x,", blob.image[i]));
  }
  absl::StrAppend(&out, "\n};\n");
  absl::StrAppendFormat(&out, "inline constexpr std::size_t kImageSize = %u;\n", blob.image.size());
  absl::StrAppendFormat(&out, "inline constexpr std::size_t kMemSize = %u;\n", blob.mem_size);
  absl::StrAppendFormat(&out, "inline constexpr std::size_t kAlign = %u;\n", blob.align);
  for (const auto& [symbol, offset] : blob.entries) {
    absl::StrAppendFormat(&out, "inline constexpr std::size_t kEntry_%s = 0x%x;\n", symbol, offset);
  }
  absl::StrAppendFormat(&out, "inline constexpr std::array<std::size_t, %u> kRelocations = {",
                        blob.relocations.size());
  for (size_t i = 0; i < blob.relocations.size(); ++i) {
    absl::StrAppend(&out, i % 8 == 0 ? "\n    " : " ",
                    absl::StrFormat("0x%x,", blob.relocations[i]));
  }
  absl::StrAppend(
      &out, "\n};\n",
      "inline constexpr BlobImage kBlob = {kImage, kMemSize, kAlign, kRelocations};\n\n",
      "}  // namespace crpp::blobs::", name, "\n\n#endif  // ", guard, "\n");
  return out;
}

}  // namespace crpp::blobtool
