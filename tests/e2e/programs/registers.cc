// registers: random patterns held in registers across the checkpoint by the
// assembly loop of registers_loop.S: ymm8..15 with AVX2 (xmm8..15 without),
// zmm8..31 and k1..k7 when the CPU has AVX-512 (cpuid + xgetbv at run time),
// rbx r8 r9 r10 r12..r15, two x87 stack values, and non-default MXCSR
// (round toward zero, DAZ) and x87 control word (single precision, truncate).
// The loop re-checks them all every 10 ms.
// Verdict: no check ever failed, and the registers hold the patterns at the end.
//
// CRPP_E2E_REGISTERS_LEVEL=sse|avx2 in the environment limits the vector
// registers used, so that every path can be run on an AVX-512 machine.
#include "tests/e2e/programs/common.h"
#include "tests/e2e/programs/registers_state.h"

namespace {

crpp::e2e::RegisterState g_state;

}  // namespace

int main(int argc, char** argv) {
  crpp::e2e::Setup(argc, argv, "registers");
  crpp::e2e::Random random(crpp::e2e::UrandomSeed());
  crpp::e2e::InitRegisterState(g_state, random, &crpp::e2e::g_verify_requested,
                               crpp::e2e::ReportFd());

  RegistersLoop(&g_state);  // writes "ready", returns after SIGUSR1

  crpp::e2e::Verdict v;
  crpp::e2e::CheckRegisterState(g_state, "", v);
  v.Note("%s st(0) st(1)", crpp::e2e::DescribeRegisterState(g_state).c_str());
  v.Finish();
}
