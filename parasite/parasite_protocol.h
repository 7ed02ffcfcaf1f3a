/*
 * The contract between the engine (core/infect/parasite.h) and the parasite
 * blob (parasite/parasite.c): the control block at the start of the shared
 * area, the messages on the socket, and the layouts of bulk results. C, for
 * both sides; only fixed-size kernel types, so the layouts are the same in
 * the blob and in the engine.
 *
 * The session, step by step:
 *   1. The engine maps the shared area in the target and in itself, loads
 *      the blob into it, fills struct crpp_parasite_ctl, and starts the task
 *      at parasite_entry with rdi = the control block and rsp = its stack.
 *   2. The parasite sends HELLO (arg0 = CRPP_PARASITE_VERSION).
 *   3. The engine sends a command; the parasite answers with exactly one
 *      message carrying the same cmd, a status (0 or -errno) and the
 *      command's results; bulk data goes through the data area or the pipe.
 *   4. FINI: the parasite answers, returns to the entry stub, and its int3
 *      hands the thread back to the engine.
 * The parasite also returns (without a word) when the socket fails or a
 * message has the wrong size: the engine then sees the int3 instead of a
 * reply.
 */
#ifndef CRPP_PARASITE_PARASITE_PROTOCOL_H_
#define CRPP_PARASITE_PARASITE_PROTOCOL_H_

#include <linux/types.h>

/* Bumped whenever anything in this file changes meaning. */
#define CRPP_PARASITE_VERSION 2

/* Page pipes per parasite (see crpp_dump_pages_args). */
#define CRPP_PAGE_PIPES 2

enum crpp_parasite_cmd {
  /* Parasite -> engine, once, unasked: arg0 = CRPP_PARASITE_VERSION. */
  CRPP_PARASITE_HELLO = 1,
  /* Ends the session: the reply comes, then the int3. */
  CRPP_PARASITE_FINI = 2,
  /* Fills struct crpp_task_state at the start of the data area. A failed
     reply says which query failed: arg0 = enum crpp_task_state_query,
     arg1 = the signal, timer or resource number (else 0). */
  CRPP_PARASITE_GET_TASK_STATE = 3,
  /* The data area holds struct crpp_dump_pages_args, then arg0 iovecs (the
     kernel's struct iovec: base, length), whose bytes are vmspliced, in
     order, into the page pipes (see crpp_dump_pages_args). The reply's arg0
     is the number of bytes put into the pipes, also when the status is an
     error (-EFAULT for an unmapped or unreadable page, ...). */
  CRPP_PARASITE_DUMP_PAGES = 4,
};

/* Every message, both ways: one SOCK_SEQPACKET datagram of this size. */
struct crpp_parasite_msg {
  __u32 cmd;    /* enum crpp_parasite_cmd */
  __s32 status; /* replies: 0, or -errno */
  __u64 arg0;
  __u64 arg1;
};

/* At a page boundary in the shared area, written by the engine before the
   start. Addresses are the target's. */
struct crpp_parasite_ctl {
  __u32 version;                   /* CRPP_PARASITE_VERSION, else the parasite returns at once */
  __u32 test_fault;                /* tests only: non-zero makes the parasite fault before HELLO */
  __s32 sock_fd;                   /* the parasite's end of the socket pair */
  __s32 pipe_fds[CRPP_PAGE_PIPES]; /* write ends of the page pipes */
  __u32 pad;
  __u64 data; /* the data area */
  __u64 data_size;
};

/* DUMP_PAGES's arguments, at the start of the data area. The bytes of all
   the DUMP_PAGES of one dump form a stream, cut in stripes of stripe_bytes:
   stripe k goes into pipe k % stripes, so that the parasite fills one pipe
   while the engine empties another. stripes = 1: every byte into pipe 0,
   stripe_bytes unused. */
struct crpp_dump_pages_args {
  __u64 offset;       /* where in the stream this command's first byte is */
  __u64 stripe_bytes; /* > 0 when stripes > 1 */
  __u32 stripes;      /* 1 .. CRPP_PAGE_PIPES */
  __u32 pad;
};

/* The kernel's struct sigaction for rt_sigaction on x86-64. */
struct crpp_ksigaction {
  __u64 handler;
  __u64 flags;
  __u64 restorer;
  __u64 mask;
};

/* The kernel's struct itimerval (getitimer). */
struct crpp_itimerval {
  __s64 interval_sec;
  __s64 interval_usec;
  __s64 value_sec;
  __s64 value_usec;
};

/* The kernel's struct rlimit64 (prlimit64). */
struct crpp_rlimit64 {
  __u64 cur;
  __u64 max;
};

/* The kernel's stack_t (sigaltstack). */
struct crpp_stack {
  __u64 sp;
  __s32 flags;
  __u32 pad;
  __u64 size;
};

#define CRPP_PARASITE_NSIG 64
#define CRPP_PARASITE_NITIMERS 3
#define CRPP_PARASITE_NRLIMITS 16

/* What GET_TASK_STATE reads, each with the syscall that says it. */
struct crpp_task_state {
  struct crpp_ksigaction sigactions[CRPP_PARASITE_NSIG]; /* [signal - 1] */
  struct crpp_itimerval itimers[CRPP_PARASITE_NITIMERS]; /* REAL, VIRTUAL, PROF */
  struct crpp_rlimit64 rlimits[CRPP_PARASITE_NRLIMITS];  /* [RLIMIT_*] */
  struct crpp_stack sigaltstack;
  __u64 tid_address;     /* PR_GET_TID_ADDRESS */
  __u64 brk;             /* brk(0) */
  __s32 pdeathsig;       /* PR_GET_PDEATHSIG */
  __s32 securebits;      /* PR_GET_SECUREBITS */
  __s32 dumpable;        /* PR_GET_DUMPABLE */
  __s32 child_subreaper; /* PR_GET_CHILD_SUBREAPER */
  __u32 umask;           /* umask(0), then umask(old) */
  __u32 pad;
};

/* Which query of GET_TASK_STATE failed. */
enum crpp_task_state_query {
  CRPP_QUERY_SIGACTION = 1,
  CRPP_QUERY_ITIMER,
  CRPP_QUERY_RLIMIT,
  CRPP_QUERY_SIGALTSTACK,
  CRPP_QUERY_TID_ADDRESS,
  CRPP_QUERY_PDEATHSIG,
  CRPP_QUERY_SECUREBITS,
  CRPP_QUERY_DUMPABLE,
  CRPP_QUERY_CHILD_SUBREAPER,
  CRPP_QUERY_UMASK,
};

#endif /* CRPP_PARASITE_PARASITE_PROTOCOL_H_ */
