/*
 * The restorer blob: the code every restored task runs last, after the
 * engine (C++, with libc) has prepared everything it can from the outside of
 * the final address space. From here on the engine's memory is going away,
 * so this code uses no libc, no globals and no TLS: only its arguments
 * (struct restorer_args, see restorer_args.h for the contract and the order
 * of the steps), its stack inside the keep area, and raw syscalls.
 */
#include <asm/prctl.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/rseq.h>
#include <linux/signal.h>
#include <linux/time.h>
#include <stddef.h>

#include "parasite/include/crpp_string.h"
#include "restorer/restorer_internal.h"

#define PAGE_MASK_BITS 0xfffull
#define SIGKILL_NR 9
#define SIGSTOP_NR 19
#define SIGCHLD_NR 17
/* The kernel's struct robust_list_head: set_robust_list wants its exact size. */
#define ROBUST_LIST_HEAD_SIZE 24

/*
 * The entry point the engine jumps to, with the args in rdi, on whatever
 * stack it had: switch to the blob's own stack in the keep area first, since
 * the engine's stack is among the ranges about to be unmapped. Basic asm at
 * file scope, so no compiler-generated prologue touches the old stack.
 */
_Static_assert(offsetof(struct restorer_args, stack_top) == 24, "restorer_entry reads 24(%rdi)");
__asm__(
    ".pushsection .text.crpp_entry, \"ax\", @progbits\n"
    ".globl restorer_entry\n"
    ".hidden restorer_entry\n"
    ".type restorer_entry, @function\n"
    "restorer_entry:\n"
    "  movq 24(%rdi), %rsp\n"
    "  andq $-16, %rsp\n"
    "  xorl %ebp, %ebp\n"
    "  call restorer_main\n"
    "  ud2\n"
    ".size restorer_entry, .-restorer_entry\n"
    ".popsection\n");

void restorer_fail(const struct restorer_args* a, int step, long err) {
  if (a->status_fd >= 0) {
    const __s32 report[2] = {step, (__s32)err};
    crpp_write(a->status_fd, report, sizeof(report));
  }
  crpp_exit_group(RESTORER_EXIT_BASE + step);
}

static int overlaps(__u64 s1, __u64 e1, __u64 s2, __u64 e2) { return s1 < e2 && s2 < e1; }

static int page_aligned(__u64 v) { return (v & PAGE_MASK_BITS) == 0; }

/*
 * Refuses arguments that would make the blob destroy itself (a range over
 * the keep area) or misread them (another version), before anything changes:
 * such a mistake would otherwise end in an unexplained SIGSEGV.
 */
static void check_args(const struct restorer_args* a) {
  const int step = RESTORER_STEP_ARGS;
  if (a->version != RESTORER_ARGS_VERSION || a->nr_unmap > RESTORER_MAX_UNMAP ||
      a->nr_vmas > RESTORER_MAX_VMAS || a->keep_start >= a->keep_end ||
      a->mm.auxv_size > sizeof(a->mm.auxv) || a->nr_shared_signals > RESTORER_MAX_SIGNALS ||
      a->nr_signals > RESTORER_MAX_SIGNALS || a->nr_threads > RESTORER_MAX_THREADS) {
    restorer_fail(a, step, -EINVAL);
  }
  /* Threads live in the keep area: their descriptions and their stacks. */
  const struct restorer_thread* threads = (const struct restorer_thread*)a->threads;
  if (a->nr_threads != 0 &&
      (a->threads < a->keep_start || a->threads + a->nr_threads * sizeof(*threads) > a->keep_end)) {
    restorer_fail(a, step, -EINVAL);
  }
  for (__u32 i = 0; i < a->nr_threads; i++) {
    const struct restorer_thread* t = &threads[i];
    if (t->nr_signals > RESTORER_MAX_SIGNALS || t->tid <= 0 ||
        t->stack_top - RESTORER_STACK_MIN < a->keep_start || t->stack_top > a->keep_end) {
      restorer_fail(a, step, -EINVAL);
    }
  }
  for (__u32 i = 0; i < a->nr_unmap; i++) {
    const struct restorer_range* u = &a->unmap[i];
    if (u->start > u->end || overlaps(u->start, u->end, a->keep_start, a->keep_end)) {
      restorer_fail(a, step, -EINVAL);
    }
  }
  for (__u32 i = 0; i < a->nr_vmas; i++) {
    const struct restorer_vma* v = &a->vmas[i];
    if (v->start >= v->end || !page_aligned(v->start) || !page_aligned(v->end) ||
        overlaps(v->start, v->end, a->keep_start, a->keep_end)) {
      restorer_fail(a, step, -EINVAL);
    }
  }
  const __u64 want[3][2] = {{a->vdso_want, a->vdso_size},
                            {a->vvar_want, a->vvar_size},
                            {a->vvar_vclock_want, a->vvar_vclock_size}};
  for (int i = 0; i < 3; i++) {
    if (want[i][1] && overlaps(want[i][0], want[i][0] + want[i][1], a->keep_start, a->keep_end)) {
      restorer_fail(a, step, -EINVAL);
    }
  }
}

/*
 * Leaves nothing of the engine that the kernel would still act on, then
 * removes the engine's mappings. Signals are blocked first: a handler of the
 * task must not run on a half-built address space (the task's own mask comes
 * back with the sigreturn). The engine libc's rseq area, robust list and
 * clear_child_tid address all point into memory unmapped here; the kernel
 * writes to them (on preemption, on exit), so they are dropped before.
 */
static void drop_engine(const struct restorer_args* a) {
  const int step = RESTORER_STEP_UNMAP;
  const __u64 all = ~0ull;
  RESTORER_CHECK(a, step, crpp_rt_sigprocmask(SIG_SETMASK, &all, 0));
  if (a->engine_rseq_abi != 0) {
    RESTORER_CHECK(a, step,
                   crpp_rseq(a->engine_rseq_abi, (__u32)a->engine_rseq_len, RSEQ_FLAG_UNREGISTER,
                             a->engine_rseq_sig));
  }
  RESTORER_CHECK(a, step, crpp_set_robust_list(0, ROBUST_LIST_HEAD_SIZE));
  crpp_set_tid_address(0);
  for (__u32 i = 0; i < a->nr_unmap; i++) {
    const struct restorer_range* u = &a->unmap[i];
    if (u->end > u->start) RESTORER_CHECK(a, step, crpp_munmap(u->start, u->end - u->start));
  }
}

static void map_vma(const struct restorer_args* a, const struct restorer_vma* v) {
  const int step = RESTORER_STEP_VMAS;
  const __u64 len = v->end - v->start;
  long r;
  switch (v->source) {
    case RESTORER_VMA_PREMAPPED:
      /* The engine filled it read-write; it moves as it is and gets its
         final protection here. */
      if (v->premap != v->start) {
        r = crpp_mremap(v->premap, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, v->start);
        RESTORER_CHECK(a, step, r);
        if ((__u64)r != v->start) restorer_fail(a, step, -EINVAL);
      }
      RESTORER_CHECK(a, step, crpp_mprotect(v->start, len, (int)v->prot));
      return;
    case RESTORER_VMA_ANON_EMPTY:
      r = crpp_mmap(v->start, len, (int)v->prot, (int)v->flags | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      break;
    case RESTORER_VMA_FILE:
      r = crpp_mmap(v->start, len, (int)v->prot, ((int)v->flags & ~MAP_ANONYMOUS) | MAP_FIXED,
                    v->fd, v->pgoff);
      break;
    default:
      r = -EINVAL;
      break;
  }
  RESTORER_CHECK(a, step, r);
  if ((__u64)r != v->start) restorer_fail(a, step, -EINVAL);
}

static void map_vmas(const struct restorer_args* a) {
  const int step = RESTORER_STEP_VMAS;
  for (__u32 i = 0; i < a->nr_vmas; i++) map_vma(a, &a->vmas[i]);
  /* Only now: one fd may back several VMAs. Close each fd once. */
  for (__u32 i = 0; i < a->nr_vmas; i++) {
    const struct restorer_vma* v = &a->vmas[i];
    if (v->source != RESTORER_VMA_FILE || v->fd < 0) continue;
    int seen = 0;
    for (__u32 j = 0; j < i && !seen; j++) {
      seen = a->vmas[j].source == RESTORER_VMA_FILE && a->vmas[j].fd == v->fd;
    }
    if (!seen) RESTORER_CHECK(a, step, crpp_close(v->fd));
  }
  for (__u32 i = 0; i < a->nr_vmas; i++) {
    const struct restorer_vma* v = &a->vmas[i];
    for (int advice = 0; advice < 64; advice++) {
      if (v->madv & (1ull << advice)) {
        RESTORER_CHECK(a, step, crpp_madvise(v->start, v->end - v->start, advice));
      }
    }
  }
}

static void restore_signals(const struct restorer_args* a) {
  /* struct restorer_sigaction is the kernel's x86-64 struct sigaction. */
  _Static_assert(sizeof(struct restorer_sigaction) == 32, "kernel sigaction layout");
  /* A SIGCHLD pending now comes from the restore itself (children that were
     zombies at dump time died again while it ran): ignoring the signal
     discards it, and its own action is set right after. */
  struct restorer_sigaction ign;
  memset(&ign, 0, sizeof(ign));
  ign.handler = 1; /* SIG_IGN */
  RESTORER_CHECK(a, RESTORER_STEP_SIGNALS, crpp_rt_sigaction(SIGCHLD_NR, &ign, 0));
  if (!(a->sigaction_set & (1ull << (SIGCHLD_NR - 1)))) {
    ign.handler = 0; /* SIG_DFL */
    RESTORER_CHECK(a, RESTORER_STEP_SIGNALS, crpp_rt_sigaction(SIGCHLD_NR, &ign, 0));
  }
  for (int sig = 1; sig <= RESTORER_NSIG; sig++) {
    if (!(a->sigaction_set & (1ull << (sig - 1)))) continue;
    if (sig == SIGKILL_NR || sig == SIGSTOP_NR) continue; /* their actions cannot change */
    RESTORER_CHECK(a, RESTORER_STEP_SIGNALS, crpp_rt_sigaction(sig, &a->sigactions[sig - 1], 0));
  }
}

static void restore_itimers(const struct restorer_args* a) {
  for (int which = 0; which < 3; which++) {
    const struct restorer_itimer* t = &a->itimers[which];
    struct itimerval v;
    v.it_interval.tv_sec = (long)t->interval_sec;
    v.it_interval.tv_usec = (long)t->interval_usec;
    v.it_value.tv_sec = (long)t->value_sec;
    v.it_value.tv_usec = (long)t->value_usec;
    RESTORER_CHECK(a, RESTORER_STEP_TIMERS, crpp_setitimer(which, &v, 0));
  }
}

/* PR_SET_MM_MAP sets every field at once; it is also the only PR_SET_MM form
   that works without CAP_SYS_RESOURCE. */
static void restore_mm(const struct restorer_args* a) {
  const struct restorer_mm* m = &a->mm;
  if (m->start_code != 0) {
    struct prctl_mm_map map;
    memset(&map, 0, sizeof(map));
    map.start_code = m->start_code;
    map.end_code = m->end_code;
    map.start_data = m->start_data;
    map.end_data = m->end_data;
    map.start_brk = m->start_brk;
    map.brk = m->brk;
    map.start_stack = m->start_stack;
    map.arg_start = m->arg_start;
    map.arg_end = m->arg_end;
    map.env_start = m->env_start;
    map.env_end = m->env_end;
    map.auxv = m->auxv_size ? (__u64*)m->auxv : 0;
    map.auxv_size = m->auxv_size;
    map.exe_fd = (__u32)m->exe_fd; /* -1 keeps the current exe link */
    RESTORER_CHECK(a, RESTORER_STEP_MM,
                   crpp_prctl(PR_SET_MM, PR_SET_MM_MAP, (__u64)&map, sizeof(map), 0));
    /* The kernel holds the file now; the task never had this fd. (Only
       here: with start_code 0 the fields, exe_fd included, are unset.) */
    if (m->exe_fd >= 0) RESTORER_CHECK(a, RESTORER_STEP_MM, crpp_close(m->exe_fd));
  }
}

/* The kernel's capability structs (linux/capability.h) for capset. */
struct cap_header {
  __u32 version;
  int pid;
};
struct cap_data {
  __u32 effective, permitted, inheritable;
};
#define CAP_VERSION_3 0x20080522
#define SECBIT_KEEP_CAPS_BIT (1u << 4)
#define CAP_LAST 63

static void capset_all(const struct restorer_args* a, __u64 eff, __u64 prm, __u64 inh) {
  struct cap_header h = {CAP_VERSION_3, 0};
  struct cap_data d[2] = {{(__u32)eff, (__u32)prm, (__u32)inh},
                          {(__u32)(eff >> 32), (__u32)(prm >> 32), (__u32)(inh >> 32)}};
  RESTORER_CHECK(a, RESTORER_STEP_CREDS, crpp_capset(&h, d));
}

/* Last, because the earlier steps need the engine's privileges. The order is
   forced by the kernel's rules: keep the permitted set across the uid change,
   take the effective set back to drop bounding capabilities and set the
   securebits (both need CAP_SETPCAP), then settle the final sets. */
void restorer_restore_creds(const struct restorer_args* a) {
  const int step = RESTORER_STEP_CREDS;
  if (!a->creds_set) return;
  RESTORER_CHECK(a, step, crpp_prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
  RESTORER_CHECK(a, step, crpp_setgroups(a->ngroups, a->groups));
  RESTORER_CHECK(a, step, crpp_setresgid(a->gid, a->egid, a->sgid));
  RESTORER_CHECK(a, step, crpp_setresuid(a->uid, a->euid, a->suid));
  crpp_setfsgid(a->fsgid); /* returns the previous id, never an error */
  crpp_setfsuid(a->fsuid);
  struct cap_header h = {CAP_VERSION_3, 0};
  struct cap_data now[2];
  RESTORER_CHECK(a, step, crpp_sys2(__NR_capget, (long)&h, (long)now));
  __u64 prm = (__u64)now[0].permitted | ((__u64)now[1].permitted << 32);
  capset_all(a, prm, prm, 0);
  for (int cap = 0; cap <= CAP_LAST; ++cap) {
    if (a->cap_bnd & (1ull << cap)) continue;
    long r = crpp_prctl(PR_CAPBSET_DROP, (__u64)cap, 0, 0, 0);
    if (r != 0 && r != -EINVAL) restorer_fail(a, step, r); /* EINVAL: no such capability */
  }
  RESTORER_CHECK(a, step, crpp_prctl(PR_SET_SECUREBITS, a->secbits, 0, 0, 0));
  capset_all(a, a->cap_eff, a->cap_prm, a->cap_inh);
}

__attribute__((noreturn, used)) void restorer_main(const struct restorer_args* a) {
  check_args(a);
  drop_engine(a);
  map_vmas(a);
  long r = restorer_move_vdso(a);
  if (r != 0) restorer_fail(a, RESTORER_STEP_VDSO, r);
  restore_signals(a);
  restore_itimers(a);
  restore_mm(a);
  const struct restorer_thread_state self = {
      &a->regs,    a->robust_list, a->robust_list_len, a->rseq_abi,
      a->rseq_len, a->rseq_sig,    a->clear_tid_addr,
  };
  restorer_set_thread_state(a, &self);
  /* Before the credentials: clone3 with a tid needs the engine's privileges. */
  restorer_create_threads(a);
  restorer_restore_creds(a);
  RESTORER_CHECK(a, RESTORER_STEP_CREDS, crpp_prctl(PR_SET_PDEATHSIG, a->pdeath_sig, 0, 0, 0));
  restorer_finish_signals(a);
  const struct restorer_cpu cpu = {&a->regs, a->sigmask, a->xsave, a->xsave_size, 1};
  restorer_sigreturn(a, &cpu);
}
