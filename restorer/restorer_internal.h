/*
 * Shared between the restorer blob's source files; freestanding C only.
 */
#ifndef CRPP_RESTORER_RESTORER_INTERNAL_H_
#define CRPP_RESTORER_RESTORER_INTERNAL_H_

#include "parasite/include/crpp_syscall.h"
#include "restorer/restorer_args.h"

/* Reports {step, err} on status_fd and ends the task with exit status
   RESTORER_EXIT_BASE + step. `err` is a negative errno. */
__attribute__((noreturn)) void restorer_fail(const struct restorer_args* a, int step, long err);

/* Fails `step` when a syscall result is an error. */
#define RESTORER_CHECK(a, step, expr)                                  \
  do {                                                                 \
    long check_ret_ = (expr);                                          \
    if (crpp_is_error(check_ret_)) restorer_fail(a, step, check_ret_); \
  } while (0)

/* Moves [vvar], [vvar_vclock] and [vdso] to where the task had them.
   Returns 0 or a negative errno. */
long restorer_move_vdso(const struct restorer_args* a);

/* Per-thread state every thread restores for itself. */
struct restorer_thread_state {
  const struct restorer_regs* regs; /* fs_base, gs_base */
  __u64 robust_list, robust_list_len;
  __u64 rseq_abi, rseq_len;
  __u32 rseq_sig;
  __u64 clear_tid_addr;
};
void restorer_set_thread_state(const struct restorer_args* a,
                               const struct restorer_thread_state* s);

/* Credentials: every thread applies them to itself (they are per thread). */
void restorer_restore_creds(const struct restorer_args* a);

/* Creates every thread of args->threads; each restores itself and returns
   into the task on its own. */
void restorer_create_threads(const struct restorer_args* a);

/* Queues the process's and the main thread's pending signals, then waits
   until every thread is ready for its sigreturn. */
void restorer_finish_signals(const struct restorer_args* a);

/* What one thread's sigframe is made of. */
struct restorer_cpu {
  const struct restorer_regs* regs;
  __u64 sigmask;
  __u64 xsave; /* address of the xsave image, or 0 */
  __u32 xsave_size;
  int close_status; /* the main thread closes the status pipe */
};

/* Whether the frame can be built (checked before a thread says it is ready). */
int restorer_cpu_ok(const struct restorer_cpu* cpu);

/* Builds the rt_sigframe and returns into the task; only comes back (to fail)
   when the kernel refuses the frame. */
__attribute__((noreturn)) void restorer_sigreturn(const struct restorer_args* a,
                                                  const struct restorer_cpu* cpu);

#endif /* CRPP_RESTORER_RESTORER_INTERNAL_H_ */
