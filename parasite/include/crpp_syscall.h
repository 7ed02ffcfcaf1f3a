/*
 * Raw x86-64 Linux system calls for the freestanding blobs (parasite,
 * restorer). A blob has no libc: it cannot use errno, it may run after the
 * libc that loaded it has been unmapped, and it must never clobber a
 * register the kernel ABI does not let a syscall clobber. So every call here
 * is one `syscall` instruction, and a failure comes back as -errno in the
 * return value (-4095..-1), exactly as the kernel returns it.
 *
 * Only kernel UAPI headers (macros and structs) are included; no libc.
 */
#ifndef CRPP_PARASITE_INCLUDE_CRPP_SYSCALL_H_
#define CRPP_PARASITE_INCLUDE_CRPP_SYSCALL_H_

#include <asm/unistd.h>
#include <linux/errno.h>
#include <linux/types.h>

/*
 * The syscall instruction takes the number in rax and arguments in rdi, rsi,
 * rdx, r10, r8, r9; it returns in rax and destroys rcx (return rip) and r11
 * (rflags). "memory" because the kernel reads and writes through pointer
 * arguments that the compiler cannot see.
 */
static inline long crpp_sys0(long nr) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
  return ret;
}

static inline long crpp_sys1(long nr, long a1) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1) : "rcx", "r11", "memory");
  return ret;
}

static inline long crpp_sys2(long nr, long a1, long a2) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2) : "rcx", "r11", "memory");
  return ret;
}

static inline long crpp_sys3(long nr, long a1, long a2, long a3) {
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
                   : "rcx", "r11", "memory");
  return ret;
}

/* r10, r8 and r9 have no constraint letter: bind them with register variables. */
static inline long crpp_sys4(long nr, long a1, long a2, long a3, long a4) {
  long ret;
  register long r10 __asm__("r10") = a4;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
                   : "rcx", "r11", "memory");
  return ret;
}

static inline long crpp_sys5(long nr, long a1, long a2, long a3, long a4, long a5) {
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return ret;
}

static inline long crpp_sys6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  long ret;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

/* The kernel reports errors as -1..-4095; anything else (even a "negative"
   address from mmap) is a result. */
static inline int crpp_is_error(long ret) { return ret < 0 && ret >= -4095; }

/*
 * Typed wrappers for the calls the blobs make. They only cast; keeping them
 * here means a blob never spells a syscall number or argument order twice.
 */
static inline long crpp_write(int fd, const void* buf, unsigned long len) {
  return crpp_sys3(__NR_write, fd, (long)buf, (long)len);
}

static inline long crpp_close(int fd) { return crpp_sys1(__NR_close, fd); }

static inline long crpp_mmap(__u64 addr, __u64 len, int prot, int flags, int fd, __u64 off) {
  return crpp_sys6(__NR_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
}

static inline long crpp_munmap(__u64 addr, __u64 len) {
  return crpp_sys2(__NR_munmap, (long)addr, (long)len);
}

static inline long crpp_mremap(__u64 old_addr, __u64 old_len, __u64 new_len, int flags,
                               __u64 new_addr) {
  return crpp_sys5(__NR_mremap, (long)old_addr, (long)old_len, (long)new_len, flags,
                   (long)new_addr);
}

static inline long crpp_mprotect(__u64 addr, __u64 len, int prot) {
  return crpp_sys3(__NR_mprotect, (long)addr, (long)len, prot);
}

static inline long crpp_madvise(__u64 addr, __u64 len, int advice) {
  return crpp_sys3(__NR_madvise, (long)addr, (long)len, advice);
}

/* The kernel's sigaction and sigset (8 bytes on x86-64), not libc's. */
static inline long crpp_rt_sigaction(int sig, const void* act, void* old) {
  return crpp_sys4(__NR_rt_sigaction, sig, (long)act, (long)old, 8);
}

static inline long crpp_rt_sigprocmask(int how, const __u64* set, __u64* old) {
  return crpp_sys4(__NR_rt_sigprocmask, how, (long)set, (long)old, 8);
}

static inline long crpp_setitimer(int which, const void* value, void* old) {
  return crpp_sys3(__NR_setitimer, which, (long)value, (long)old);
}

static inline long crpp_prctl(int option, __u64 a2, __u64 a3, __u64 a4, __u64 a5) {
  return crpp_sys5(__NR_prctl, option, (long)a2, (long)a3, (long)a4, (long)a5);
}

static inline long crpp_arch_prctl(int code, __u64 addr) {
  return crpp_sys2(__NR_arch_prctl, code, (long)addr);
}

static inline long crpp_set_robust_list(__u64 head, __u64 len) {
  return crpp_sys2(__NR_set_robust_list, (long)head, (long)len);
}

static inline long crpp_set_tid_address(__u64 tidptr) {
  return crpp_sys1(__NR_set_tid_address, (long)tidptr);
}

static inline long crpp_setgroups(long n, const __u32* groups) {
  return crpp_sys2(__NR_setgroups, n, (long)groups);
}

static inline long crpp_setresuid(__u32 r, __u32 e, __u32 s) {
  return crpp_sys3(__NR_setresuid, r, e, s);
}

static inline long crpp_setresgid(__u32 r, __u32 e, __u32 s) {
  return crpp_sys3(__NR_setresgid, r, e, s);
}

static inline long crpp_setfsuid(__u32 id) { return crpp_sys1(__NR_setfsuid, id); }
static inline long crpp_setfsgid(__u32 id) { return crpp_sys1(__NR_setfsgid, id); }

static inline long crpp_capset(void* header, const void* data) {
  return crpp_sys2(__NR_capset, (long)header, (long)data);
}

static inline long crpp_rseq(__u64 rseq, __u32 len, int flags, __u32 sig) {
  return crpp_sys4(__NR_rseq, (long)rseq, len, flags, sig);
}

/* The calls of the parasite (parasite/parasite.c). */
static inline long crpp_sendto(int fd, const void* buf, unsigned long len, int flags) {
  return crpp_sys6(__NR_sendto, fd, (long)buf, (long)len, flags, 0, 0);
}

static inline long crpp_recvfrom(int fd, void* buf, unsigned long len, int flags) {
  return crpp_sys6(__NR_recvfrom, fd, (long)buf, (long)len, flags, 0, 0);
}

/* iov: the kernel's struct iovec[nr]. */
static inline long crpp_vmsplice(int fd, const void* iov, unsigned long nr, unsigned flags) {
  return crpp_sys4(__NR_vmsplice, fd, (long)iov, (long)nr, flags);
}

/* fds: the kernel's struct pollfd[nfds] (<linux/poll.h>). */
static inline long crpp_poll(void* fds, unsigned long nfds, int timeout_ms) {
  return crpp_sys3(__NR_poll, (long)fds, (long)nfds, timeout_ms);
}

/* value: the kernel's struct itimerval (two pairs of longs). */
static inline long crpp_getitimer(int which, void* value) {
  return crpp_sys2(__NR_getitimer, which, (long)value);
}

/* limits: the kernel's struct rlimit64 (two __u64). */
static inline long crpp_prlimit64(int pid, int resource, const void* new_limit, void* old_limit) {
  return crpp_sys4(__NR_prlimit64, pid, resource, (long)new_limit, (long)old_limit);
}

static inline long crpp_sigaltstack(const void* ss, void* old) {
  return crpp_sys2(__NR_sigaltstack, (long)ss, (long)old);
}

static inline long crpp_brk(__u64 addr) { return crpp_sys1(__NR_brk, (long)addr); }

static inline long crpp_umask(int mask) { return crpp_sys1(__NR_umask, mask); }

static inline __attribute__((noreturn)) void crpp_exit_group(int status) {
  for (;;) crpp_sys1(__NR_exit_group, status);
}

#endif /* CRPP_PARASITE_INCLUDE_CRPP_SYSCALL_H_ */
