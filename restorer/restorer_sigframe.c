/*
 * The last act of a restore: an x86-64 rt_sigframe with the task's registers,
 * signal mask and extended (xsave) state, handed to rt_sigreturn, which is
 * the one way to load every register at once, rip, rsp, rflags and the FPU
 * included.
 *
 * What the kernel expects (arch/x86/kernel/signal_64.c, fpu/signal.c):
 *  - rt_sigreturn takes its frame at rsp - 8: the frame starts with the
 *    8-byte pretcode slot (the handler's return address, popped by its
 *    `ret`), so when the syscall is made directly, rsp must point at uc;
 *  - uc.uc_mcontext.fpstate points to a 64-byte aligned XSAVE image in
 *    standard (non-compacted) form, whose software-reserved bytes (offset
 *    464 of the legacy area) carry FP_XSTATE_MAGIC1 and the sizes, and which
 *    is followed by FP_XSTATE_MAGIC2; without those the kernel restores only
 *    the legacy x87/SSE part and AVX state would be lost;
 *  - UC_STRICT_RESTORE_SS makes it take ss from the frame as given.
 */
#include <asm/sigcontext.h>
#include <asm/signal.h>
#include <asm/ucontext.h>
#include <linux/signal.h>
#include <stddef.h>

#include "parasite/include/crpp_string.h"
#include "restorer/restorer_internal.h"

struct rt_sigframe {
  __u64 pretcode;
  struct ucontext uc;
  __u64 info[16]; /* struct siginfo; rt_sigreturn does not read it */
};

/* The layout the kernel reads, checked against numbers from its ABI. */
_Static_assert(offsetof(struct rt_sigframe, uc) == 8, "pretcode is one word");
_Static_assert(offsetof(struct ucontext, uc_mcontext) == 40, "uc_mcontext offset");
_Static_assert(sizeof(struct sigcontext) == 256, "sigcontext size");
_Static_assert(offsetof(struct ucontext, uc_sigmask) == 296, "uc_sigmask offset");
_Static_assert(sizeof(struct rt_sigframe) == 440, "rt_sigframe size");
_Static_assert(offsetof(struct _fpstate_64, sw_reserved) == 464, "xsave software bytes");

/* Legacy area (512) + XSAVE header (64): the least an XSAVE image can be. */
#define XSAVE_MIN_SIZE 576
#define XSAVE_ALIGN 64

static __u64 align_up(__u64 v, __u64 to) { return (v + to - 1) & ~(to - 1); }

static void fill_mcontext(struct sigcontext* mc, const struct restorer_regs* r, __u64 sigmask) {
  mc->r8 = r->r8;
  mc->r9 = r->r9;
  mc->r10 = r->r10;
  mc->r11 = r->r11;
  mc->r12 = r->r12;
  mc->r13 = r->r13;
  mc->r14 = r->r14;
  mc->r15 = r->r15;
  mc->rdi = r->di;
  mc->rsi = r->si;
  mc->rbp = r->bp;
  mc->rbx = r->bx;
  mc->rdx = r->dx;
  mc->rax = r->ax; /* also what rt_sigreturn "returns" */
  mc->rcx = r->cx;
  mc->rsp = r->sp;
  mc->rip = r->ip;
  mc->eflags = r->flags;
  mc->cs = (__u16)r->cs;
  mc->ss = (__u16)r->ss;
  mc->oldmask = sigmask;
}

/* Copies the xsave image to `fp` and adds what marks it as a full XSAVE
   frame. The image must be standard-format (XSAVE, or ptrace's
   NT_X86_XSTATE), since the kernel restores it with XRSTOR. */
static void fill_fpstate(unsigned char* fp, const struct restorer_args* a,
                         const struct restorer_cpu* cpu) {
  const __u32 size = cpu->xsave_size;
  memcpy(fp, (const void*)cpu->xsave, size);
  struct _fpx_sw_bytes sw;
  memset(&sw, 0, sizeof(sw));
  sw.magic1 = FP_XSTATE_MAGIC1;
  sw.extended_size = size + FP_XSTATE_MAGIC2_SIZE;
  sw.xfeatures = a->xfeatures;
  sw.xstate_size = size;
  memcpy(fp + offsetof(struct _fpstate_64, sw_reserved), &sw, sizeof(sw));
  const __u32 magic2 = FP_XSTATE_MAGIC2;
  memcpy(fp + size, &magic2, sizeof(magic2));
}

int restorer_cpu_ok(const struct restorer_cpu* cpu) {
  return cpu->xsave == 0 || (cpu->xsave_size >= XSAVE_MIN_SIZE && cpu->xsave % XSAVE_ALIGN == 0);
}

void restorer_sigreturn(const struct restorer_args* a, const struct restorer_cpu* cpu) {
  const int with_fp = cpu->xsave != 0;
  if (!restorer_cpu_ok(cpu)) restorer_fail(a, RESTORER_STEP_SIGRETURN, -EINVAL);
  /* The frame lives in this function's own stack frame: nothing is called
     after the switch to it, and the stack below stays free. */
  const __u64 need = sizeof(struct rt_sigframe) + 16 +
                     (with_fp ? cpu->xsave_size + FP_XSTATE_MAGIC2_SIZE + XSAVE_ALIGN : 0);
  unsigned char* area = __builtin_alloca(need);
  memset(area, 0, need);
  struct rt_sigframe* f = (struct rt_sigframe*)align_up((__u64)area, 16);
  unsigned char* fp = 0;
  if (with_fp) {
    fp = (unsigned char*)align_up((__u64)(f + 1), XSAVE_ALIGN);
    fill_fpstate(fp, a, cpu);
  }

  f->uc.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | (with_fp ? UC_FP_XSTATE : 0);
  fill_mcontext(&f->uc.uc_mcontext, cpu->regs, cpu->sigmask);
  f->uc.uc_mcontext.fpstate = (struct _fpstate*)fp;
  f->uc.uc_sigmask = cpu->sigmask;
  /* rt_sigreturn also sets the alternate signal stack from uc_stack: give it
     the one this thread has now (the engine restored the task's). */
  long r = crpp_sys2(__NR_sigaltstack, 0, (long)&f->uc.uc_stack);
  if (crpp_is_error(r)) restorer_fail(a, RESTORER_STEP_SIGRETURN, r);
  f->uc.uc_stack.ss_flags &= ~SS_ONSTACK;

  /* The task must not inherit the status pipe; closing it is also how the
     engine learns that the restorer got this far. (The main thread's job:
     the threads share its fd table.) */
  if (cpu->close_status && a->status_fd >= 0) crpp_close(a->status_fd);

  /* A tracing engine wants the task once more, right at the sigreturn, to
     remove the keep area this code runs from: stop it with int3. SIGTRAP is
     unblocked first: a blocked trap signal would make the kernel reset the
     task's own SIGTRAP action; the tracer discards the signal. */
  if (a->trap_before_sigreturn) {
    __u64 trap = 1ull << (5 - 1); /* SIGTRAP */
    crpp_rt_sigprocmask(SIG_UNBLOCK, &trap, 0);
    __asm__ volatile("int3" ::: "memory");
  }

  /* rbx keeps our stack pointer across the call, for the failure path. */
  __asm__ volatile(
      "movq %%rsp, %%rbx\n\t"
      "movq %1, %%rsp\n\t"
      "syscall\n\t"
      "movq %%rbx, %%rsp\n\t"
      : "=a"(r)
      : "r"(&f->uc), "0"((long)__NR_rt_sigreturn)
      : "rbx", "rcx", "r11", "memory");
  /* Only a refused frame gets here, and the kernel has queued SIGSEGV. */
  crpp_exit_group(RESTORER_EXIT_BASE + RESTORER_STEP_SIGRETURN);
}
