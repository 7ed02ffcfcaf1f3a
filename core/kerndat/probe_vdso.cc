// Probes of the vDSO: its layout ([vvar], [vvar_vclock], [vdso]), moving it
// with mremap() (what restore does), and mapping a fresh one with arch_prctl().
#include <elf.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/kerndat/probe_util.h"
#include "core/kerndat/probes_internal.h"

namespace crpp::kerndat::internal {
namespace {

constexpr int kArchMapVdso32 = 0x2002;
constexpr int kArchMapVdso64 = 0x2003;

std::string DescribeBlocks(const std::vector<MapsEntry>& blocks) {
  std::vector<std::string> parts;
  for (const MapsEntry& b : blocks) parts.push_back(b.name + " " + Bytes(b.end - b.start));
  return absl::StrJoin(parts, ", ");
}

// The address of dynamic symbol `name` in a vDSO image mapped at `base`.
uintptr_t VdsoSymbol(uintptr_t base, const char* name) {
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) return 0;
  const auto* ph = reinterpret_cast<const Elf64_Phdr*>(base + eh->e_phoff);
  intptr_t bias = 0;
  bool have_load = false;
  const Elf64_Dyn* dyn = nullptr;
  for (int i = 0; i < eh->e_phnum; ++i) {
    if (ph[i].p_type == PT_LOAD && !have_load) {
      bias = static_cast<intptr_t>(base + ph[i].p_offset - ph[i].p_vaddr);
      have_load = true;
    } else if (ph[i].p_type == PT_DYNAMIC) {
      dyn = reinterpret_cast<const Elf64_Dyn*>(ph[i].p_vaddr);  // unbiased for now
    }
  }
  if (!have_load || dyn == nullptr) return 0;
  dyn = reinterpret_cast<const Elf64_Dyn*>(reinterpret_cast<uintptr_t>(dyn) + bias);
  uintptr_t symtab = 0, strtab = 0, hash = 0;
  for (const Elf64_Dyn* d = dyn; d->d_tag != DT_NULL; ++d) {
    if (d->d_tag == DT_SYMTAB) symtab = d->d_un.d_ptr + bias;
    if (d->d_tag == DT_STRTAB) strtab = d->d_un.d_ptr + bias;
    if (d->d_tag == DT_HASH) hash = d->d_un.d_ptr + bias;
  }
  if (symtab == 0 || strtab == 0) return 0;
  // DT_HASH gives the symbol count; without it the string table follows the symbols.
  size_t count = hash != 0 ? reinterpret_cast<const Elf32_Word*>(hash)[1]
                           : (strtab > symtab ? (strtab - symtab) / sizeof(Elf64_Sym) : 0);
  const auto* syms = reinterpret_cast<const Elf64_Sym*>(symtab);
  for (size_t i = 0; i < count; ++i) {
    if (syms[i].st_shndx == SHN_UNDEF || ELF64_ST_TYPE(syms[i].st_info) != STT_FUNC) continue;
    if (strcmp(reinterpret_cast<const char*>(strtab + syms[i].st_name), name) == 0) {
      return syms[i].st_value + bias;
    }
  }
  return 0;
}

// In a child: unmaps every vDSO block and asks arch_prctl() for a new one.
Result MapFreshVdso(int op) {
  return InChild([op]() -> Result {
    std::optional<std::vector<MapsEntry>> maps = ReadSelfMaps();
    if (!maps) return FailErrno("/proc/self/maps", errno);
    std::vector<MapsEntry> blocks = VdsoBlocks(*maps);
    if (blocks.empty()) return Fail("no [vdso] in /proc/self/maps");
    // From here on nothing may call into the vDSO.
    for (const MapsEntry& b : blocks) {
      if (munmap(reinterpret_cast<void*>(b.start), b.end - b.start) != 0) {
        return FailErrno("munmap " + b.name, errno);
      }
    }
    // Success returns the size of the vDSO image.
    if (syscall(SYS_arch_prctl, op, blocks.front().start) < 0) {
      return FailErrno(
          op == kArchMapVdso64 ? "arch_prctl(ARCH_MAP_VDSO_64)" : "arch_prctl(ARCH_MAP_VDSO_32)",
          errno);
    }
    maps = ReadSelfMaps();
    if (!maps) return FailErrno("/proc/self/maps", errno);
    blocks = VdsoBlocks(*maps);
    if (blocks.empty()) return Fail("arch_prctl() succeeded but no [vdso] appeared");
    return Ok("mapped anew: " + DescribeBlocks(blocks));
  });
}

}  // namespace

Result ProbeVdsoLayout() {
  std::optional<std::vector<MapsEntry>> maps = ReadSelfMaps();
  if (!maps) return FailErrno("/proc/self/maps", errno);
  std::vector<MapsEntry> blocks = VdsoBlocks(*maps);
  if (blocks.empty()) return Fail("no [vdso] in /proc/self/maps");
  bool contiguous = true;
  for (size_t i = 1; i < blocks.size(); ++i) {
    if (blocks[i].start != blocks[i - 1].end) contiguous = false;
  }
  return Ok(DescribeBlocks(blocks) + (contiguous ? "" : " (not contiguous)"));
}

Result ProbeVdsoMremap() {
  return InChild([]() -> Result {
    std::optional<std::vector<MapsEntry>> maps = ReadSelfMaps();
    if (!maps) return FailErrno("/proc/self/maps", errno);
    std::vector<MapsEntry> blocks = VdsoBlocks(*maps);
    if (blocks.empty()) return Fail("no [vdso] in /proc/self/maps");
    const uintptr_t lo = blocks.front().start;
    const uintptr_t hi = blocks.back().end;
    void* park = mmap(nullptr, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (park == MAP_FAILED) return FailErrno("mmap", errno);
    const uintptr_t dst = reinterpret_cast<uintptr_t>(park);
    // Move every block, keeping their relative placement (the vDSO code finds
    // its data pages at fixed offsets from itself).
    for (const MapsEntry& b : blocks) {
      void* to = reinterpret_cast<void*>(dst + (b.start - lo));
      void* r = mremap(reinterpret_cast<void*>(b.start), b.end - b.start, b.end - b.start,
                       MREMAP_FIXED | MREMAP_MAYMOVE, to);
      if (r != to) return FailErrno("mremap " + b.name, errno);
    }
    maps = ReadSelfMaps();
    if (!maps) return FailErrno("/proc/self/maps", errno);
    std::vector<MapsEntry> moved = VdsoBlocks(*maps);
    if (moved.size() != blocks.size()) return Fail("the moved blocks lost their names");
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (moved[i].name != blocks[i].name || moved[i].start != dst + (blocks[i].start - lo)) {
        return Fail(moved[i].name + " is not where it was moved to");
      }
    }
    uintptr_t vdso = 0;
    for (const MapsEntry& b : moved) {
      if (b.name == "[vdso]") vdso = b.start;
    }
    using ClockGettime = int (*)(clockid_t, timespec*);
    uintptr_t sym = VdsoSymbol(vdso, "__vdso_clock_gettime");
    if (sym == 0) return Ok("moved (no __vdso_clock_gettime to try)");
    timespec via_vdso{}, via_syscall{};
    if (reinterpret_cast<ClockGettime>(sym)(CLOCK_MONOTONIC, &via_vdso) != 0) {
      return Fail("the moved vDSO's clock_gettime failed");
    }
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &via_syscall);
    int64_t diff_ms = (via_syscall.tv_sec - via_vdso.tv_sec) * 1000 +
                      (via_syscall.tv_nsec - via_vdso.tv_nsec) / 1000000;
    if (diff_ms < 0 || diff_ms > 1000) {
      return Fail(absl::StrFormat("the moved vDSO's clock is off by %d ms", diff_ms));
    }
    return Ok("moved; its clock_gettime still agrees with the syscall");
  });
}

Result ProbeCanMapVdso() {
#if defined(__x86_64__)
  return MapFreshVdso(kArchMapVdso64);
#else
  return Fail("only probed on x86-64");
#endif
}

Result ProbeCompatCr() {
#if defined(__x86_64__)
  return MapFreshVdso(kArchMapVdso32);
#else
  return Fail("only probed on x86-64");
#endif
}

}  // namespace crpp::kerndat::internal
