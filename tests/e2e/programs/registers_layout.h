// Byte offsets into the state that registers.cc shares with the assembly loop
// in registers_loop.S (both include this file; registers.cc static_asserts
// that its struct matches).
#ifndef CRPP_TESTS_E2E_PROGRAMS_REGISTERS_LAYOUT_H_
#define CRPP_TESTS_E2E_PROGRAMS_REGISTERS_LAYOUT_H_

// 24 vector patterns of 64 bytes: v8..v15, then zmm16..zmm31.
#define REG_PATTERNS 0
// What the 24 vector registers held when the loop ended.
#define REG_FINAL 1536
// 8 general-purpose patterns: rbx r8 r9 r10 r12 r13 r14 r15; then the final values.
#define REG_GPR 3072
#define REG_FINAL_GPR 3136
// Opmask patterns k1..k7; then the final values.
#define REG_KMASK 3200
#define REG_FINAL_KMASK 3264
// Two x87 stack values (80 bits in 16-byte slots): [0] is st(1), [1] is st(0).
#define REG_X87 3328
#define REG_FINAL_X87 3360
// struct timespec for nanosleep: the loop's period.
#define REG_TIMESPEC 3392
// Pointer to the int that, once non-zero, ends the loop.
#define REG_STOP 3408
#define REG_ITERATIONS 3416
// The first mismatch seen (a REG_BAD_* code; 0: none) and its iteration.
#define REG_FIRST_BAD 3424
#define REG_FIRST_BAD_ITER 3432
#define REG_MXCSR 3440
#define REG_FCW 3444
#define REG_FINAL_MXCSR 3448
#define REG_FINAL_FCW 3452
#define REG_SAVED_MXCSR 3456
#define REG_SAVED_FCW 3460
#define REG_SCRATCH 3464
// 0: xmm8..15 (SSE); 1: ymm8..15 (AVX2); 2: zmm8..31 and k1..k7 (AVX-512).
#define REG_LEVEL 3472
#define REG_REPORT_FD 3476
// What write(report, "ready\n") returned.
#define REG_READY_RESULT 3480
#define REG_READY_TEXT 3488

// Codes of REG_FIRST_BAD: vector i (0-based in REG_PATTERNS) is 1 + i;
// general-purpose register j is REG_BAD_GPR + j; k(m) is REG_BAD_KMASK + m.
#define REG_BAD_GPR 32
#define REG_BAD_KMASK 47
#define REG_BAD_MXCSR 64
#define REG_BAD_FCW 65
#define REG_BAD_ST0 66
#define REG_BAD_ST1 67

#endif  // CRPP_TESTS_E2E_PROGRAMS_REGISTERS_LAYOUT_H_
