/*
 * Threads and pending signals: the last things the main thread's blob does
 * before its own sigreturn. Every other thread of the process is created
 * here with clone3 and the tid it had (CLONE_THREAD, sharing everything),
 * on a stack of its own in the keep area; each one restores its per-thread
 * state, credentials and pending signals, tells the main thread it is
 * ready, and returns into the task through a sigframe of its own.
 */
#include <asm/prctl.h>
#include <linux/futex.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/signal.h>
#include <stddef.h>

#include "parasite/include/crpp_string.h"
#include "restorer/restorer_internal.h"

/* The kernel's struct robust_list_head: set_robust_list wants its exact size. */
#define ROBUST_LIST_HEAD_SIZE 24

/*
 * clone3 for a thread: the child starts on the stack clone_args names, with
 * every register of the parent but rax (0) and rsp, so what it must call
 * travels in registers the syscall keeps (r8..r10), never on a stack.
 *   long restorer_clone_thread(struct clone_args* ca, unsigned long size,
 *                              thread_fn fn, const void* a, const void* t);
 * The parent gets the new tid (or -errno) back; the child calls fn(a, t),
 * which never returns.
 */
_Static_assert(__NR_clone3 == 435, "restorer_clone_thread uses clone3's number");
__asm__(
    ".pushsection .text, \"ax\", @progbits\n"
    ".globl restorer_clone_thread\n"
    ".hidden restorer_clone_thread\n"
    ".type restorer_clone_thread, @function\n"
    "restorer_clone_thread:\n"
    "  movq %rdx, %r9\n"
    "  movq %rcx, %r10\n"
    "  movl $435, %eax\n"
    "  syscall\n"
    "  testq %rax, %rax\n"
    "  jnz 1f\n"
    "  xorl %ebp, %ebp\n"
    "  movq %r10, %rdi\n"
    "  movq %r8, %rsi\n"
    "  call *%r9\n"
    "  ud2\n"
    "1:\n"
    "  ret\n"
    ".size restorer_clone_thread, .-restorer_clone_thread\n"
    ".popsection\n");

typedef void (*thread_fn)(const struct restorer_args*, const struct restorer_thread*);
long restorer_clone_thread(struct clone_args* ca, unsigned long size, thread_fn fn,
                           const struct restorer_args* a, const struct restorer_thread* t);

static long sys_getpid(void) { return crpp_sys0(__NR_getpid); }

/* Queues `n` signals again, each with the siginfo it had: the kernel lets a
   thread queue any siginfo to itself (tid == 0: the process's shared queue,
   which the main thread fills). */
static void queue_signals(const struct restorer_args* a, const struct restorer_siginfo* sigs,
                          __u32 n, int tid) {
  const long pid = sys_getpid();
  for (__u32 i = 0; i < n; i++) {
    __s32 signo;
    memcpy(&signo, sigs[i].bytes, sizeof(signo));
    long r = tid == 0 ? crpp_sys3(__NR_rt_sigqueueinfo, pid, signo, (long)sigs[i].bytes)
                      : crpp_sys4(__NR_rt_tgsigqueueinfo, pid, tid, signo, (long)sigs[i].bytes);
    RESTORER_CHECK(a, RESTORER_STEP_SIGQUEUE, r);
  }
}

/* Robust list, rseq, clear_child_tid address and TLS bases of the calling thread. */
void restorer_set_thread_state(const struct restorer_args* a,
                               const struct restorer_thread_state* s) {
  const int step = RESTORER_STEP_THREAD;
  RESTORER_CHECK(a, step,
                 crpp_set_robust_list(s->robust_list,
                                      s->robust_list ? s->robust_list_len : ROBUST_LIST_HEAD_SIZE));
  if (s->rseq_abi != 0) {
    RESTORER_CHECK(a, step, crpp_rseq(s->rseq_abi, (__u32)s->rseq_len, 0, s->rseq_sig));
  }
  crpp_set_tid_address(s->clear_tid_addr);
  RESTORER_CHECK(a, step, crpp_arch_prctl(ARCH_SET_FS, s->regs->fs_base));
  RESTORER_CHECK(a, step, crpp_arch_prctl(ARCH_SET_GS, s->regs->gs_base));
}

__attribute__((noreturn, used)) static void thread_main(const struct restorer_args* a,
                                                        const struct restorer_thread* t) {
  const struct restorer_thread_state state = {
      &t->regs,    t->robust_list, t->robust_list_len, t->rseq_abi,
      t->rseq_len, t->rseq_sig,    t->clear_tid_addr,
  };
  restorer_set_thread_state(a, &state);
  if (t->sas_size != 0) {
    struct {
      __u64 sp;
      __s32 flags, pad;
      __u64 size;
    } ss = {t->sas_sp, (__s32)(t->sas_flags & ~SS_ONSTACK), 0, t->sas_size};
    RESTORER_CHECK(a, RESTORER_STEP_THREAD, crpp_sigaltstack(&ss, 0));
  }
  RESTORER_CHECK(a, RESTORER_STEP_THREAD, crpp_prctl(PR_SET_NAME, (__u64)t->comm, 0, 0, 0));
  restorer_restore_creds(a);
  RESTORER_CHECK(a, RESTORER_STEP_CREDS, crpp_prctl(PR_SET_PDEATHSIG, t->pdeath_sig, 0, 0, 0));
  queue_signals(a, t->signals, t->nr_signals, t->tid);
  const struct restorer_cpu cpu = {&t->regs, t->sigmask, t->xsave, t->xsave_size, 0};
  if (!restorer_cpu_ok(&cpu)) restorer_fail(a, RESTORER_STEP_SIGRETURN, -EINVAL);
  /* Ready: from here on nothing can fail but a frame the kernel refuses. */
  __u32* ready = (__u32*)&a->threads_ready;
  __atomic_add_fetch(ready, 1, __ATOMIC_RELEASE);
  crpp_sys3(__NR_futex, (long)ready, FUTEX_WAKE_PRIVATE, 1);
  restorer_sigreturn(a, &cpu);
}

void restorer_create_threads(const struct restorer_args* a) {
  const struct restorer_thread* threads = (const struct restorer_thread*)a->threads;
  for (__u32 i = 0; i < a->nr_threads; i++) {
    const struct restorer_thread* t = &threads[i];
    struct clone_args ca;
    memset(&ca, 0, sizeof(ca));
    ca.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    ca.stack = t->stack_top - RESTORER_STACK_MIN;
    ca.stack_size = RESTORER_STACK_MIN;
    ca.set_tid = (__u64)&t->tid;
    ca.set_tid_size = 1;
    long r = restorer_clone_thread(&ca, sizeof(ca), thread_main, a, t);
    RESTORER_CHECK(a, RESTORER_STEP_CLONE, r);
    if (r != t->tid) restorer_fail(a, RESTORER_STEP_CLONE, -EEXIST);
  }
}

void restorer_finish_signals(const struct restorer_args* a) {
  queue_signals(a, a->shared_signals, a->nr_shared_signals, 0);
  queue_signals(a, a->signals, a->nr_signals, (int)sys_getpid());
  __u32* ready = (__u32*)&a->threads_ready;
  for (;;) {
    __u32 n = __atomic_load_n(ready, __ATOMIC_ACQUIRE);
    if (n >= a->nr_threads) break;
    crpp_sys4(__NR_futex, (long)ready, FUTEX_WAIT_PRIVATE, n, 0);
  }
}
