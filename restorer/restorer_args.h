/*
 * The contract between the engine (C++) and the restorer blob (freestanding
 * C): everything the last stage of a task's restore needs, laid out in one
 * block of memory that the engine fills and the blob reads. Plain C, fixed
 * width types, no pointers into engine memory: only addresses that stay
 * mapped once the blob has unmapped the engine (the "keep" area).
 *
 * The sequence inside a restored task, once the engine code has set up files,
 * cwd, credentials and has premapped memory inside the keep area:
 *   1. the engine code copies the blob into the keep area, applies its
 *      relocations (crpp::LoadBlob) and jumps to the blob's restorer_entry
 *      with the args address in rdi; the stub switches to `stack_top` and
 *      calls restorer_main(args);
 *   2. the blob blocks every signal (the task's mask comes back with the
 *      sigreturn), unregisters the engine's rseq area, and unmaps every range
 *      in `unmap` (the engine's own mappings);
 *   3. moves each premapped VMA to its final address with mremap, maps the
 *      ones that need no contents, and applies the final protections;
 *   4. moves the vDSO/vvar areas to the addresses the task had;
 *   5. restores signal actions, itimers, the mm fields (PR_SET_MM_MAP; then
 *      closes mm.exe_fd), robust list, rseq, clear_tid address, fs/gs base;
 *   5b. creates the other threads (clone3 with their tids), which restore
 *      their own state, credentials and pending signals and wait at their
 *      own sigreturn; then sets its credentials, queues the pending signals
 *      and waits until every thread is ready;
 *   6. builds an rt_sigframe from `regs`, `sigmask` and the xsave area on
 *      its stack, closes status_fd, and calls rt_sigreturn: the task goes on
 *      where it was dumped. (rt_sigreturn also sets the sigaltstack from the
 *      frame: the blob puts the thread's current one there, so the engine
 *      restores the altstack with sigaltstack() before jumping.)
 * A failure before the final sigreturn writes {step, -errno} (two int32) to
 * status_fd and exits the task with status RESTORER_EXIT_BASE + step, so the
 * engine can name the step that failed and kill the half-restored tree.
 * Success shows as EOF on the status pipe with the task still alive; a frame
 * the kernel rejects kills the task with SIGSEGV after status_fd is closed.
 *
 * The keep area stays mapped after the sigreturn (code cannot unmap the page
 * it runs from); the engine removes it afterwards, as CRIU does, e.g. by
 * trapping the task under ptrace and running munmap in it.
 */
#ifndef CRPP_RESTORER_RESTORER_ARGS_H_
#define CRPP_RESTORER_RESTORER_ARGS_H_

#include <stdint.h>

#define RESTORER_ARGS_VERSION 2
#define RESTORER_MAX_VMAS 4096
#define RESTORER_MAX_UNMAP 512
#define RESTORER_MAX_AUXV 128
#define RESTORER_NSIG 64
#define RESTORER_EXIT_BASE 100
#define RESTORER_MAX_GROUPS 256
/* Stack the blob needs at least, on top of xsave_size + 1 KiB for the frame. */
#define RESTORER_STACK_MIN (16 * 1024)
/* Pending signals restored per queue (a thread's own, the process's shared). */
#define RESTORER_MAX_SIGNALS 64
#define RESTORER_MAX_THREADS 4096

/* How a VMA gets its contents. */
enum restorer_vma_source {
  RESTORER_VMA_PREMAPPED = 1,  /* contents are at `premap`: mremap it to `start` */
  RESTORER_VMA_ANON_EMPTY = 2, /* no dumped pages: a fresh anonymous mapping */
  RESTORER_VMA_FILE = 3,       /* map `fd` at `pgoff` (shared file mappings) */
};

struct restorer_vma {
  uint64_t start, end; /* final address range */
  uint64_t premap;     /* RESTORER_VMA_PREMAPPED: where the contents are now */
  uint64_t pgoff;      /* file offset in bytes (RESTORER_VMA_FILE) */
  uint32_t prot;       /* final PROT_* */
  /* MAP_* for fresh mappings (MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, MAP_GROWSDOWN) */
  uint32_t flags;
  int32_t fd;      /* RESTORER_VMA_FILE: an fd open in the task, closed by the blob after mapping */
  uint32_t source; /* enum restorer_vma_source */
  uint64_t madv;   /* bitmap of MADV_* values to apply (bit n = madvise advice n) */
};

struct restorer_range {
  uint64_t start, end;
};

struct restorer_sigaction {
  uint64_t handler; /* SIG_DFL (0), SIG_IGN (1) or an address */
  uint64_t flags;   /* SA_*; SA_RESTORER is set when restorer is given */
  uint64_t restorer;
  uint64_t mask;
};

/* Layout of user_regs_struct from <sys/user.h> (x86-64). */
struct restorer_regs {
  uint64_t r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
  uint64_t ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
  uint64_t fs_base, gs_base, ds, es, fs, gs;
};

/* The fields of struct prctl_mm_map (<linux/prctl.h>), for PR_SET_MM_MAP. */
struct restorer_mm {
  uint64_t start_code, end_code, start_data, end_data;
  uint64_t start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv[RESTORER_MAX_AUXV];
  uint32_t auxv_size; /* bytes */
  int32_t exe_fd;     /* fd of the executable, or -1 to keep the current one */
};

struct restorer_itimer {
  uint64_t interval_sec, interval_usec, value_sec, value_usec;
};

/* A pending signal: the kernel's siginfo, queued again as it was. */
struct restorer_siginfo {
  uint8_t bytes[128];
};

/* Every thread but the main one: created by the main thread's blob with
   clone3(set_tid) once the address space is final, each restores its own
   state and returns into the task with its own sigframe. (The main thread's
   values are the fields of the same names in restorer_args.) */
struct restorer_thread {
  int32_t tid;
  uint32_t nr_signals;
  uint64_t stack_top; /* 16-byte aligned, inside the keep area */
  struct restorer_regs regs;
  uint64_t sigmask;
  uint64_t xsave; /* 64-byte aligned image in the keep area, or 0 */
  uint32_t xsave_size, pdeath_sig;
  uint64_t robust_list, robust_list_len;
  uint64_t rseq_abi, rseq_len;
  uint32_t rseq_sig, sas_flags;
  uint64_t clear_tid_addr;
  uint64_t sas_sp, sas_size;                             /* sigaltstack; size 0: none */
  char comm[16];                                         /* thread name, NUL-terminated */
  struct restorer_siginfo signals[RESTORER_MAX_SIGNALS]; /* its own pending signals */
};

struct restorer_args {
  uint32_t version; /* RESTORER_ARGS_VERSION */
  uint32_t pad0;

  /* Memory the blob must keep: itself, these args, premapped contents, its stack. */
  uint64_t keep_start, keep_end;
  uint64_t stack_top; /* 16-byte aligned top of the blob's stack inside the keep area */

  /* Engine mappings to remove (never overlapping keep or the vDSO areas). */
  uint32_t nr_unmap;
  uint32_t nr_vmas;
  struct restorer_range unmap[RESTORER_MAX_UNMAP];
  struct restorer_vma vmas[RESTORER_MAX_VMAS];

  /* vDSO: where the task's current vdso/vvar areas are and where they go.
     A zero size means "none". The areas move together, keeping their order. */
  uint64_t vdso_cur, vdso_size, vdso_want;
  uint64_t vvar_cur, vvar_size, vvar_want;
  uint64_t vvar_vclock_cur, vvar_vclock_size, vvar_vclock_want;

  /* Signal actions: bit n-1 of sigaction_set says signal n is restored. */
  uint64_t sigaction_set;
  struct restorer_sigaction sigactions[RESTORER_NSIG];

  struct restorer_itimer itimers[3]; /* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */
  struct restorer_mm mm;

  /* The engine's libc registered a robust list, a clear_child_tid address
     and an rseq area in memory that is unmapped here; the kernel would write
     into whatever the task maps there later. So these are always set, and
     0 means "none" (the registration is cleared), never "leave as is". */
  uint64_t robust_list, robust_list_len; /* 0: none */
  uint64_t rseq_abi, rseq_len;           /* the task's rseq area; 0: none */
  uint32_t rseq_sig, pad1;
  uint64_t clear_tid_addr; /* set_tid_address; 0: none */
  /* The rseq area the engine's libc registered for this thread (glibc:
     thread pointer + __rseq_offset, the registered length, RSEQ_SIG), which
     the blob unregisters before unmapping anything; 0: none registered. */
  uint64_t engine_rseq_abi, engine_rseq_len;
  uint32_t engine_rseq_sig, pad4;

  /* CPU state. fs_base/gs_base in regs are set with arch_prctl. */
  struct restorer_regs regs;
  uint64_t sigmask; /* blocked signals after sigreturn */
  /* Address of a 64-byte aligned xsave image in the keep area, or 0 (then the
     FPU/vector state starts clean). Standard (non-compacted) format, as XSAVE
     and PTRACE_GETREGSET NT_X86_XSTATE produce it: the kernel uses XRSTOR. */
  uint64_t xsave;
  uint32_t xsave_size;
  uint32_t pad2;
  uint64_t xfeatures; /* XCR0 bits present in the xsave image */

  /* Where the blob reports a failure: it writes {step, -errno} (two int32) to this fd. */
  int32_t status_fd;
  uint32_t pad3;

  /* Credentials, applied after everything that needs the engine's privileges
     (PR_SET_MM_MAP): groups, uids/gids, bounding set, securebits, then the
     capability sets. Skipped when creds_set is 0. */
  uint32_t creds_set;
  uint32_t ngroups;
  uint32_t groups[RESTORER_MAX_GROUPS];
  uint32_t uid, euid, suid, fsuid;
  uint32_t gid, egid, sgid, fsgid;
  uint32_t secbits, pad5;
  uint64_t cap_inh, cap_prm, cap_eff, cap_bnd;

  /* Nonzero: stop with int3 just before rt_sigreturn (the engine traces the
     task and removes the keep area at that point). */
  uint32_t trap_before_sigreturn, pad6;

  /* The parent-death signal, set after the credentials (changing them clears
     it); until then the task dies with the engine (SIGKILL). */
  uint32_t pdeath_sig, pad7;

  /* Pending signals, queued last (all signals stay blocked until the
     sigreturn): the process's shared queue and the main thread's own. */
  uint32_t nr_shared_signals, nr_signals;
  struct restorer_siginfo shared_signals[RESTORER_MAX_SIGNALS];
  struct restorer_siginfo signals[RESTORER_MAX_SIGNALS];

  /* The other threads (`threads` is the address of an array in the keep
     area). The main thread creates them and waits until each has restored
     its state (threads_ready counts them, a futex word) before its own
     sigreturn: the status pipe stays open for their failures until then. */
  uint64_t threads;
  uint32_t nr_threads;
  uint32_t threads_ready;
};

/* Steps, for failure reports. */
enum restorer_step {
  RESTORER_STEP_UNMAP = 1,
  RESTORER_STEP_VMAS = 2,
  RESTORER_STEP_VDSO = 3,
  RESTORER_STEP_SIGNALS = 4,
  RESTORER_STEP_TIMERS = 5,
  RESTORER_STEP_MM = 6,
  RESTORER_STEP_THREAD = 7,
  RESTORER_STEP_SIGRETURN = 8,
  RESTORER_STEP_ARGS = 9, /* bad version, or a range that overlaps the keep area */
  RESTORER_STEP_CREDS = 10,
  RESTORER_STEP_SIGQUEUE = 11, /* pending signals */
  RESTORER_STEP_CLONE = 12,    /* creating a thread */
};

#endif /* CRPP_RESTORER_RESTORER_ARGS_H_ */
