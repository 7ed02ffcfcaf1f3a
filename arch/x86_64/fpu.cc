#include "arch/x86_64/fpu.h"

#include <cpuid.h>

#include <array>
#include <cstring>

#include "absl/strings/str_format.h"

namespace crpp::arch {
namespace {

// xsave components and CRIU's field for each.
enum Component {
  kAvx = 2,
  kBndregs = 3,
  kBndcsr = 4,
  kOpmask = 5,
  kZmmHi256 = 6,
  kHi16Zmm = 7,
  kPkru = 9
};

struct Placement {
  uint32_t offset = 0, size = 0;
};

// Where component `c` sits in the standard format, from CPUID leaf 0xD,
// asked once per component: in a VM each CPUID exits to the hypervisor, and
// every thread of a dump or restore converts its registers.
Placement Where(int c) {
  static const auto* const kPlaces = [] {
    auto* places = new std::array<Placement, kPkru + 1>();
    for (int k = kAvx; k <= kPkru; ++k) {
      unsigned a = 0, b = 0, cx = 0, d = 0;
      __cpuid_count(0xd, k, a, b, cx, d);
      (*places)[k] = {b, a};
    }
    return places;
  }();
  return (*kPlaces)[c];
}

template <class T>
void Copy(const std::string& x, Placement p, google::protobuf::RepeatedField<T>* out) {
  if (p.size == 0 || p.offset + p.size > x.size()) return;
  size_t n = p.size / sizeof(T);
  out->Resize(static_cast<int>(n), 0);
  memcpy(out->mutable_data(), x.data() + p.offset, n * sizeof(T));
}

template <class T>
absl::Status Put(std::string& x, Placement p, const google::protobuf::RepeatedField<T>& in,
                 const char* name) {
  if (in.empty()) return absl::OkStatus();
  size_t bytes = static_cast<size_t>(in.size()) * sizeof(T);
  if (p.size == 0 || p.offset + p.size > x.size() || bytes > p.size) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the image holds %s state (%d bytes) that this CPU's xsave area lacks", name, bytes));
  }
  memcpy(x.data() + p.offset, in.data(), bytes);
  return absl::OkStatus();
}

template <class T>
T Load(const std::string& x, size_t off) {
  T v{};
  memcpy(&v, x.data() + off, sizeof v);
  return v;
}

template <class T>
void Store(std::string& x, size_t off, T v) {
  memcpy(x.data() + off, &v, sizeof v);
}

}  // namespace

absl::Status XsaveToFpregs(const std::string& x, criu::user_x86_fpregs_entry& out) {
  if (x.size() < 576) {
    return absl::DataLossError(absl::StrFormat("xsave image of %d bytes is too small", x.size()));
  }
  // Legacy FXSAVE area.
  out.set_cwd(Load<uint16_t>(x, 0));
  out.set_swd(Load<uint16_t>(x, 2));
  out.set_twd(Load<uint16_t>(x, 4));
  out.set_fop(Load<uint16_t>(x, 6));
  out.set_rip(Load<uint64_t>(x, 8));
  out.set_rdp(Load<uint64_t>(x, 16));
  out.set_mxcsr(Load<uint32_t>(x, 24));
  out.set_mxcsr_mask(Load<uint32_t>(x, 28));
  Copy(x, {32, 128}, out.mutable_st_space());
  Copy(x, {160, 256}, out.mutable_xmm_space());
  Copy(x, {416, 96}, out.mutable_padding());
  auto* xs = out.mutable_xsave();
  xs->set_xstate_bv(Load<uint64_t>(x, 512));
  Copy(x, Where(kAvx), xs->mutable_ymmh_space());
  Copy(x, Where(kBndregs), xs->mutable_bndreg_state());
  Copy(x, Where(kBndcsr), xs->mutable_bndcsr_state());
  Copy(x, Where(kOpmask), xs->mutable_opmask_reg());
  Copy(x, Where(kZmmHi256), xs->mutable_zmm_upper());
  Copy(x, Where(kHi16Zmm), xs->mutable_hi16_zmm());
  Copy(x, Where(kPkru), xs->mutable_pkru());
  return absl::OkStatus();
}

absl::StatusOr<std::string> FpregsToXsave(const criu::user_x86_fpregs_entry& in, size_t size,
                                          uint64_t xcr0) {
  std::string x(size, '\0');
  if (size < 576) return absl::InvalidArgumentError("xsave area smaller than 576 bytes");
  Store<uint16_t>(x, 0, static_cast<uint16_t>(in.cwd()));
  Store<uint16_t>(x, 2, static_cast<uint16_t>(in.swd()));
  Store<uint16_t>(x, 4, static_cast<uint16_t>(in.twd()));
  Store<uint16_t>(x, 6, static_cast<uint16_t>(in.fop()));
  Store<uint64_t>(x, 8, in.rip());
  Store<uint64_t>(x, 16, in.rdp());
  Store<uint32_t>(x, 24, in.mxcsr());
  Store<uint32_t>(x, 28, in.mxcsr_mask());
  if (auto s = Put(x, {32, 128}, in.st_space(), "x87"); !s.ok()) return s;
  if (auto s = Put(x, {160, 256}, in.xmm_space(), "SSE"); !s.ok()) return s;
  uint64_t bv = 0x3;  // x87 and SSE are always in the legacy area
  if (in.has_xsave()) {
    const auto& xs = in.xsave();
    bv = xs.xstate_bv() & xcr0;
    if ((xs.xstate_bv() & ~xcr0 & ~0x3ull) != 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "the image has xsave features %#x that this CPU does not enable (XCR0 %#x)",
          xs.xstate_bv(), xcr0));
    }
    if (auto s = Put(x, Where(kAvx), xs.ymmh_space(), "AVX"); !s.ok()) return s;
    if (auto s = Put(x, Where(kBndregs), xs.bndreg_state(), "MPX"); !s.ok()) return s;
    if (auto s = Put(x, Where(kBndcsr), xs.bndcsr_state(), "MPX"); !s.ok()) return s;
    if (auto s = Put(x, Where(kOpmask), xs.opmask_reg(), "AVX-512 opmask"); !s.ok()) return s;
    if (auto s = Put(x, Where(kZmmHi256), xs.zmm_upper(), "AVX-512"); !s.ok()) return s;
    if (auto s = Put(x, Where(kHi16Zmm), xs.hi16_zmm(), "AVX-512"); !s.ok()) return s;
    if (auto s = Put(x, Where(kPkru), xs.pkru(), "PKRU"); !s.ok()) return s;
  }
  Store<uint64_t>(x, 512, bv);
  return x;
}

}  // namespace crpp::arch
