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

/* Builds the rt_sigframe and returns into the task; only comes back (to fail)
   when the kernel refuses the frame. */
__attribute__((noreturn)) void restorer_sigreturn(const struct restorer_args* a);

#endif /* CRPP_RESTORER_RESTORER_INTERNAL_H_ */
