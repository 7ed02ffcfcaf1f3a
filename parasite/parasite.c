/*
 * The parasite: code the engine places into a process being dumped (see
 * core/infect/parasite.h) to ask it what only the process itself can tell,
 * or to hand over its pages without copying them. It runs on the thread the
 * engine seized, with that thread's signals blocked, on a stack inside the
 * shared area, and serves commands from its socket until FINI
 * (parasite/parasite_protocol.h); then it returns into the entry stub, whose
 * int3 gives the thread back to the engine.
 *
 * What it must never do: touch the task's FPU and vector registers (it is
 * built with -mgeneral-regs-only, and the engine puts back only the
 * general-purpose ones), leave anything behind (no fd, no mapping, no
 * changed setting: umask is read by setting it and setting it back at once),
 * or raise a signal (sends use MSG_NOSIGNAL; the engine keeps its pipe end
 * open for as long as the parasite may write).
 */
#include <linux/poll.h>
#include <linux/prctl.h>
#include <linux/uio.h>
#include <stddef.h>

#include "parasite/include/crpp_syscall.h"
#include "parasite/parasite_protocol.h"

/* From <sys/socket.h>, which is libc's. */
#define PARASITE_MSG_NOSIGNAL 0x4000

/*
 * The engine starts the thread here with rdi = the control block and rsp at
 * the top of the parasite's stack. The stub aligns the stack as a call
 * expects, clears the direction flag the task may have had set, and calls
 * parasite_main; when that returns, int3 stops the thread for the engine
 * (which never resumes it here: the loop only makes sure of it).
 */
__asm__(
    ".pushsection .text.crpp_entry, \"ax\", @progbits\n"
    ".globl parasite_entry\n"
    ".hidden parasite_entry\n"
    ".type parasite_entry, @function\n"
    "parasite_entry:\n"
    "  andq $-16, %rsp\n"
    "  xorl %ebp, %ebp\n"
    "  cld\n"
    "  call parasite_main\n"
    "1:\n"
    "  int3\n"
    "  jmp 1b\n"
    ".size parasite_entry, .-parasite_entry\n"
    ".popsection\n");

static long send_msg(const struct crpp_parasite_ctl* ctl, __u32 cmd, long status, __u64 arg0,
                     __u64 arg1) {
  const struct crpp_parasite_msg m = {
      .cmd = cmd, .status = (__s32)status, .arg0 = arg0, .arg1 = arg1};
  long n;
  do {
    n = crpp_sendto(ctl->sock_fd, &m, sizeof(m), PARASITE_MSG_NOSIGNAL);
  } while (n == -EINTR);
  return n == sizeof(m) ? 0 : (n < 0 ? n : -EIO);
}

/* A query of GET_TASK_STATE that failed: which one, and about what. */
struct failure {
  __u64 query;
  __u64 index;
};

static long fail(struct failure* f, __u64 query, __u64 index, long err) {
  f->query = query;
  f->index = index;
  return err;
}

/* A prctl that writes an int through its second argument. */
static long prctl_int(int option, __s32* out) {
  return crpp_prctl(option, (__u64)(unsigned long)out, 0, 0, 0);
}

static long get_task_state(const struct crpp_parasite_ctl* ctl, struct failure* f) {
  struct crpp_task_state* st = (struct crpp_task_state*)(unsigned long)ctl->data;
  long r;
  if (ctl->data_size < sizeof(*st)) return fail(f, 0, 0, -E2BIG);
  /* Reading the action of SIGKILL and SIGSTOP is allowed, only setting is not. */
  for (int sig = 1; sig <= CRPP_PARASITE_NSIG; sig++) {
    r = crpp_rt_sigaction(sig, 0, &st->sigactions[sig - 1]);
    if (r < 0) return fail(f, CRPP_QUERY_SIGACTION, sig, r);
  }
  for (int which = 0; which < CRPP_PARASITE_NITIMERS; which++) {
    r = crpp_getitimer(which, &st->itimers[which]);
    if (r < 0) return fail(f, CRPP_QUERY_ITIMER, which, r);
  }
  /* A task may always read its own limits (another task's need
     CAP_SYS_RESOURCE when its uid differs). */
  for (int res = 0; res < CRPP_PARASITE_NRLIMITS; res++) {
    r = crpp_prlimit64(0, res, 0, &st->rlimits[res]);
    if (r < 0) return fail(f, CRPP_QUERY_RLIMIT, res, r);
  }
  r = crpp_sigaltstack(0, &st->sigaltstack);
  if (r < 0) return fail(f, CRPP_QUERY_SIGALTSTACK, 0, r);
  r = crpp_prctl(PR_GET_TID_ADDRESS, (__u64)(unsigned long)&st->tid_address, 0, 0, 0);
  if (r < 0) return fail(f, CRPP_QUERY_TID_ADDRESS, 0, r);
  r = prctl_int(PR_GET_PDEATHSIG, &st->pdeathsig);
  if (r < 0) return fail(f, CRPP_QUERY_PDEATHSIG, 0, r);
  r = crpp_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (r < 0) return fail(f, CRPP_QUERY_SECUREBITS, 0, r);
  st->securebits = (__s32)r;
  r = crpp_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (r < 0) return fail(f, CRPP_QUERY_DUMPABLE, 0, r);
  st->dumpable = (__s32)r;
  r = prctl_int(PR_GET_CHILD_SUBREAPER, &st->child_subreaper);
  if (r < 0) return fail(f, CRPP_QUERY_CHILD_SUBREAPER, 0, r);
  st->brk = (__u64)crpp_brk(0);
  /* umask cannot fail; it is read by replacing it, and put back at once. */
  r = crpp_umask(0);
  st->umask = (__u32)r;
  r = crpp_umask((int)r);
  if (r < 0) return fail(f, CRPP_QUERY_UMASK, 0, r);
  st->pad = 0;
  return 0;
}

/*
 * vmsplice without SPLICE_F_GIFT: the pipe holds references to the task's
 * own pages, no copy is made. A call stops when the pipe is full (it waits
 * only while none of it is free) and says how much went in; the engine
 * empties the pipes meanwhile, so this loops until all of it is through.
 * Each call stays within one stripe (one pipe): the last iovec it takes is
 * cut short for the call and given its length back after. Partly sent
 * iovecs are advanced in place (the engine does not read them back).
 */
static long dump_pages(const struct crpp_parasite_ctl* ctl, __u64 nr, __u64* done) {
  const struct crpp_dump_pages_args* args =
      (const struct crpp_dump_pages_args*)(unsigned long)ctl->data;
  struct iovec* iov = (struct iovec*)(args + 1);
  __u64 i = 0;
  __u64 offset = args->offset;
  const __u64 stripes = args->stripes;
  const __u64 stripe_bytes = args->stripe_bytes;
  *done = 0;
  if (ctl->data_size < sizeof(*args)) return -E2BIG;
  if (nr > (ctl->data_size - sizeof(*args)) / sizeof(*iov)) return -E2BIG;
  if (stripes < 1 || stripes > CRPP_PAGE_PIPES || (stripes > 1 && stripe_bytes == 0)) {
    return -EINVAL;
  }
  while (i < nr) {
    if (iov[i].iov_len == 0) {
      i++;
      continue;
    }
    int fd = ctl->pipe_fds[0];
    __u64 room = ~(__u64)0; /* bytes left in this stripe */
    if (stripes > 1) {
      fd = ctl->pipe_fds[(offset / stripe_bytes) % stripes];
      room = stripe_bytes - offset % stripe_bytes;
    }
    __u64 count = 0;
    __u64 bytes = 0;
    while (i + count < nr && count < UIO_MAXIOV && bytes < room) {
      bytes += iov[i + count].iov_len;
      count++;
    }
    struct iovec* last = &iov[i + count - 1];
    const __u64 last_len = last->iov_len;
    if (bytes > room) last->iov_len -= bytes - room;
    /* Sleep until the pipe has room: vmsplice takes the pipe's lock first,
       and a drain holds it while it copies a whole pipe into the image, so
       a vmsplice into a full pipe would spin on the lock, burning a CPU
       the copies need, instead of sleeping. */
    struct pollfd room_left = {fd, POLLOUT, 0};
    long polled = crpp_poll(&room_left, 1, -1);
    if (polled == -EINTR) continue;
    if (polled < 0) return polled;
    long n = crpp_vmsplice(fd, &iov[i], count, 0);
    last->iov_len = last_len;
    if (n == -EINTR) continue;
    if (n < 0) return n;
    if (n == 0) return -EIO; /* cannot happen with a non-empty iovec */
    *done += (__u64)n;
    offset += (__u64)n;
    for (__u64 left = (__u64)n; left > 0;) {
      if (left >= iov[i].iov_len) {
        left -= iov[i].iov_len;
        i++;
      } else {
        iov[i].iov_base = (char*)iov[i].iov_base + left;
        iov[i].iov_len -= left;
        left = 0;
      }
    }
  }
  return 0;
}

/* Called by parasite_entry; returning hands the thread back. */
void parasite_main(const struct crpp_parasite_ctl* ctl) {
  if (ctl->version != CRPP_PARASITE_VERSION) return;
  if (ctl->test_fault) __builtin_trap();
  if (send_msg(ctl, CRPP_PARASITE_HELLO, 0, CRPP_PARASITE_VERSION, 0) < 0) return;
  for (;;) {
    struct crpp_parasite_msg m;
    long n = crpp_recvfrom(ctl->sock_fd, &m, sizeof(m), 0);
    if (n == -EINTR) continue;
    if (n != sizeof(m)) return; /* the engine is gone, or speaks another language */
    long status = 0;
    __u64 arg0 = 0, arg1 = 0;
    switch (m.cmd) {
      case CRPP_PARASITE_FINI:
        send_msg(ctl, m.cmd, 0, 0, 0);
        return;
      case CRPP_PARASITE_GET_TASK_STATE: {
        struct failure f = {0, 0};
        status = get_task_state(ctl, &f);
        arg0 = f.query;
        arg1 = f.index;
        break;
      }
      case CRPP_PARASITE_DUMP_PAGES:
        status = dump_pages(ctl, m.arg0, &arg0);
        break;
      default:
        status = -ENOSYS;
        break;
    }
    if (send_msg(ctl, m.cmd, status, arg0, arg1) < 0) return;
  }
}
