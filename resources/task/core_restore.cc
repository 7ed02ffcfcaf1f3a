// Restore side of the TaskCore plugin: runs inside the task being restored,
// after memory is premapped. What must happen last (registers, signal
// actions, timers, ...) goes into the restorer's arguments; the rest is
// applied here.
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "arch/x86_64/fpu.h"
#include "arch/x86_64/xsave.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/log.h"
#include "core/restore/plan.h"
#include "resources/task/core.h"

namespace crpp::resources {
namespace {

// Kernel-internal "restart" results a task may be stopped with inside a
// syscall; they never reach user space.
constexpr int64_t kErestartSys = -512, kErestartNoIntr = -513, kErestartNoHand = -514,
                  kErestartRestartBlock = -516;

void SetRegs(const criu::user_x86_regs_entry& g, restorer_regs& r) {
  r.r15 = g.r15(), r.r14 = g.r14(), r.r13 = g.r13(), r.r12 = g.r12();
  r.bp = g.bp(), r.bx = g.bx(), r.r11 = g.r11(), r.r10 = g.r10(), r.r9 = g.r9(), r.r8 = g.r8();
  r.ax = g.ax(), r.cx = g.cx(), r.dx = g.dx(), r.si = g.si(), r.di = g.di();
  r.orig_ax = g.orig_ax(), r.ip = g.ip(), r.cs = g.cs(), r.flags = g.flags(), r.sp = g.sp();
  r.ss = g.ss(), r.fs_base = g.fs_base(), r.gs_base = g.gs_base();
  r.ds = g.ds(), r.es = g.es(), r.fs = g.fs(), r.gs = g.gs();
  // A task frozen inside a syscall resumes by redoing it, as the kernel would
  // have: rewind to the syscall instruction with the number back in rax.
  // A restart-block syscall (nanosleep) lost its kernel state: it returns EINTR.
  if (static_cast<int64_t>(r.orig_ax) >= 0) {
    int64_t ax = static_cast<int64_t>(r.ax);
    if (ax == kErestartSys || ax == kErestartNoIntr || ax == kErestartNoHand) {
      r.ax = r.orig_ax;
      r.ip -= 2;
    } else if (ax == kErestartRestartBlock) {
      r.ax = static_cast<uint64_t>(-EINTR);
    }
  }
}

uint64_t Caps(const google::protobuf::RepeatedField<uint32_t>& words) {
  uint64_t v = 0;
  for (int i = 0; i < words.size() && i < 2; ++i) v |= static_cast<uint64_t>(words[i]) << (32 * i);
  return v;
}

// Credentials are applied by the restorer, last: the steps before it need
// the engine's privileges.
absl::Status PlanCreds(const criu::creds_entry& c, restorer_args& a) {
  if (c.groups_size() > RESTORER_MAX_GROUPS) {
    return absl::UnimplementedError(
        absl::StrFormat("the task has %d supplementary groups, more than the %d supported",
                        c.groups_size(), RESTORER_MAX_GROUPS));
  }
  a.creds_set = 1;
  a.ngroups = static_cast<uint32_t>(c.groups_size());
  for (int i = 0; i < c.groups_size(); ++i) a.groups[i] = c.groups(i);
  a.uid = c.uid(), a.euid = c.euid(), a.suid = c.suid(), a.fsuid = c.fsuid();
  a.gid = c.gid(), a.egid = c.egid(), a.sgid = c.sgid(), a.fsgid = c.fsgid();
  a.secbits = c.secbits();
  a.cap_inh = Caps(c.cap_inh());
  a.cap_prm = Caps(c.cap_prm());
  a.cap_eff = Caps(c.cap_eff());
  a.cap_bnd = Caps(c.cap_bnd());
  if (c.has_no_new_privs() && c.no_new_privs() && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::InternalError(absl::StrFormat("PR_SET_NO_NEW_PRIVS: %s", strerror(errno)));
  }
  return absl::OkStatus();
}

// Timer ids are part of the program's state (it holds them), so each timer is
// created with its id: PR_TIMER_CREATE_RESTORE_IDS (Linux 6.17+) makes
// timer_create take the id it is given.
constexpr int kPrTimerCreateRestoreIds = 77;

absl::Status RestorePosixTimers(const criu::task_timers_entry& timers, pid_t pid) {
  if (timers.posix_size() == 0) return absl::OkStatus();
  if (prctl(kPrTimerCreateRestoreIds, 1, 0, 0, 0) != 0) {
    return absl::UnimplementedError(absl::StrFormat(
        "the task has %d POSIX timers, and this kernel cannot create timers with given ids "
        "(PR_TIMER_CREATE_RESTORE_IDS: %s)",
        timers.posix_size(), strerror(errno)));
  }
  absl::Status status;
  for (const auto& pt : timers.posix()) {
    sigevent sev{};
    sev.sigev_notify = static_cast<int>(pt.it_sigev_notify());
    sev.sigev_signo = static_cast<int>(pt.si_signo());
    sev.sigev_value.sival_ptr = reinterpret_cast<void*>(pt.sival_ptr());
    if (pt.it_sigev_notify() & SIGEV_THREAD_ID) {
      sev._sigev_un._tid = pt.has_notify_thread_id() ? pt.notify_thread_id() : pid;
    }
    int id = static_cast<int>(pt.it_id());
    if (syscall(SYS_timer_create, pt.clock_id(), &sev, &id) != 0 ||
        id != static_cast<int>(pt.it_id())) {
      status = absl::InternalError(
          absl::StrFormat("cannot create POSIX timer %d: %s", pt.it_id(), strerror(errno)));
      break;
    }
    itimerspec its{};
    its.it_interval = {static_cast<time_t>(pt.isec()), static_cast<long>(pt.insec())};
    its.it_value = {static_cast<time_t>(pt.vsec()), static_cast<long>(pt.vnsec())};
    // A timer that was armed but due right now must stay armed.
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0 &&
        (its.it_interval.tv_sec != 0 || its.it_interval.tv_nsec != 0)) {
      its.it_value.tv_nsec = 1;
    }
    if (syscall(SYS_timer_settime, id, 0, &its, nullptr) != 0) {
      status = absl::InternalError(
          absl::StrFormat("cannot arm POSIX timer %d: %s", pt.it_id(), strerror(errno)));
      break;
    }
  }
  prctl(kPrTimerCreateRestoreIds, 0, 0, 0, 0);
  return status;
}

// A core image of one thread, checked for what this engine can restore.
absl::StatusOr<criu::core_entry> ReadCore(const std::string& path) {
  auto all = images::ReadAll<criu::core_entry>(path, images::Core());
  if (!all.ok()) return all.status();
  if (all->size() != 1) return absl::DataLossError(path + ": expected one core entry");
  criu::core_entry core = std::move(all->front());
  if (core.mtype() != criu::core_entry::X86_64 || !core.has_thread_info()) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: architecture %s: only x86-64 tasks can be restored", path,
                        criu::core_entry::march_Name(core.mtype())));
  }
  if (core.thread_info().gpregs().has_mode() &&
      core.thread_info().gpregs().mode() != criu::NATIVE) {
    return absl::UnimplementedError(path + ": 32-bit (compat) tasks are not supported yet");
  }
  return core;
}

absl::Status PlanSignals(const criu::signal_queue_entry& queue, const std::string& path,
                         restorer_siginfo* out, uint32_t& n) {
  if (queue.signals_size() > RESTORER_MAX_SIGNALS) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: %d pending signals, more than the %d "
                        "supported per queue",
                        path, queue.signals_size(), RESTORER_MAX_SIGNALS));
  }
  n = 0;
  for (const auto& e : queue.signals()) {
    if (e.siginfo().size() != sizeof(restorer_siginfo)) {
      return absl::DataLossError(
          absl::StrFormat("%s: a pending signal's siginfo has %d bytes, not %d", path,
                          e.siginfo().size(), sizeof(restorer_siginfo)));
    }
    memcpy(out[n++].bytes, e.siginfo().data(), sizeof(restorer_siginfo));
  }
  return absl::OkStatus();
}

// What every thread restores for itself, the main thread (T = restorer_args)
// as the others (T = restorer_thread): registers, FPU state, mask, robust
// list, rseq, its pending signals.
template <class T>
absl::Status PlanThread(const criu::core_entry& core, const std::string& path,
                        const RestorePlan& plan, T& t) {
  const auto& ti = core.thread_info();
  SetRegs(ti.gpregs(), t.regs);
  t.clear_tid_addr = ti.clear_tid_addr();
  auto layout = arch::ReadXsaveLayout();
  if (!layout.ok()) return layout.status();
  auto xsave = arch::FpregsToXsave(ti.fpregs(), layout->enabled_size, layout->xcr0);
  if (!xsave.ok()) {
    return absl::Status(xsave.status().code(), path + ": " + std::string(xsave.status().message()));
  }
  if (xsave->size() > plan.xsave_capacity) {
    return absl::InternalError("xsave area larger than reserved");
  }
  memcpy(reinterpret_cast<void*>(t.xsave), xsave->data(), xsave->size());
  t.xsave_size = static_cast<uint32_t>(xsave->size());
  if (!core.has_thread_core()) return absl::OkStatus();
  const auto& th = core.thread_core();
  if (th.has_blk_sigset()) t.sigmask = th.blk_sigset();
  t.robust_list = th.futex_rla();
  t.robust_list_len = th.futex_rla_len();
  if (th.has_rseq_entry() && th.rseq_entry().rseq_abi_pointer() != 0) {
    t.rseq_abi = th.rseq_entry().rseq_abi_pointer();
    t.rseq_len = th.rseq_entry().rseq_abi_size();
    t.rseq_sig = th.rseq_entry().signature();
  }
  t.pdeath_sig = th.has_pdeath_sig() ? th.pdeath_sig() : 0;
  if (th.has_signals_p()) return PlanSignals(th.signals_p(), path, t.signals, t.nr_signals);
  return absl::OkStatus();
}

// The threads besides the main one, from their core-TID.img.
absl::Status PlanThreads(const RestoreContext& ctx, restorer_args& a) {
  if (ctx.threads.size() != a.nr_threads) {
    return absl::InternalError(absl::StrFormat("pid %d: %d threads to restore, room for %d",
                                               ctx.pid, ctx.threads.size(), a.nr_threads));
  }
  auto* threads = reinterpret_cast<restorer_thread*>(a.threads);
  for (size_t i = 0; i < ctx.threads.size(); ++i) {
    restorer_thread& t = threads[i];
    t.tid = ctx.threads[i];
    std::string path = absl::StrFormat("%s/core-%d.img", ctx.images_dir, t.tid);
    auto core = ReadCore(path);
    if (!core.ok()) return core.status();
    if (!core->has_thread_core()) return absl::DataLossError(path + ": no thread_core");
    if (auto s = PlanThread(*core, path, *ctx.plan, t); !s.ok()) return s;
    const auto& th = core->thread_core();
    if (th.has_sas() && th.sas().ss_size() != 0) {
      t.sas_sp = th.sas().ss_sp();
      t.sas_size = th.sas().ss_size();
      t.sas_flags = th.sas().ss_flags();
    }
    std::string comm = th.has_comm() ? th.comm() : "";
    strncpy(t.comm, comm.c_str(), sizeof t.comm - 1);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TaskCore::Restore(RestoreContext& ctx) {
  std::string path = absl::StrFormat("%s/core-%d.img", ctx.images_dir, ctx.pid);
  auto read = ReadCore(path);
  if (!read.ok()) return read.status();
  const criu::core_entry& core = *read;
  if (!core.has_tc()) return absl::DataLossError(path + ": no task core (tc)");
  restorer_args& a = *ctx.plan->args;
  a.xfeatures = 0;
  if (auto layout = arch::ReadXsaveLayout(); layout.ok()) a.xfeatures = layout->xcr0;
  a.sigmask = core.tc().blk_sigset();
  if (auto s = PlanThread(core, path, *ctx.plan, a); !s.ok()) return s;
  if (core.tc().has_signals_s()) {
    if (auto s = PlanSignals(core.tc().signals_s(), path, a.shared_signals, a.nr_shared_signals);
        !s.ok()) {
      return s;
    }
  }
  if (auto s = PlanThreads(ctx, a); !s.ok()) return s;

  const auto& tc = core.tc();
  // A task that was stopped (SIGSTOP) is left stopped once it is restored.
  ctx.plan->stopped = tc.task_state() == kTaskStopped;
  int sig = 0;
  for (const auto& sa : tc.sigactions()) {
    // CRIU lists every signal but SIGKILL and SIGSTOP, in order.
    ++sig;
    if (sig == SIGKILL || sig == SIGSTOP) ++sig;
    if (sig > RESTORER_NSIG) break;
    restorer_sigaction& k = a.sigactions[sig - 1];
    k.handler = sa.sigaction();
    k.flags = sa.flags();
    k.restorer = sa.restorer();
    k.mask = sa.mask();
    a.sigaction_set |= 1ull << (sig - 1);
  }
  if (tc.has_timers()) {
    const criu::itimer_entry* t[] = {&tc.timers().real(), &tc.timers().virt(), &tc.timers().prof()};
    for (int i = 0; i < 3; ++i) {
      a.itimers[i] = {t[i]->isec(), t[i]->iusec(), t[i]->vsec(), t[i]->vusec()};
      // A periodic timer caught at expiry reads 0 left; 0 would disarm it.
      if (a.itimers[i].value_sec == 0 && a.itimers[i].value_usec == 0 &&
          (a.itimers[i].interval_sec != 0 || a.itimers[i].interval_usec != 0)) {
        a.itimers[i].value_usec = 1;
      }
    }
    if (auto s = RestorePosixTimers(tc.timers(), ctx.pid); !s.ok()) return s;
  }
  if (tc.has_rlimits()) {
    for (int res = 0; res < tc.rlimits().rlimits_size() && res < RLIM_NLIMITS; ++res) {
      const auto& rl = tc.rlimits().rlimits(res);
      rlimit want{rl.cur(), rl.max()};
      if (setrlimit(static_cast<__rlimit_resource>(res), &want) != 0) {
        rlimit have{};
        getrlimit(static_cast<__rlimit_resource>(res), &have);
        return absl::PermissionDeniedError(absl::StrFormat(
            "cannot restore rlimit %d (soft %d, hard %d; the restorer's hard limit is %d): %s", res,
            rl.cur(), rl.max(), have.rlim_max, strerror(errno)));
      }
    }
  }
  if (personality(tc.personality()) < 0) {
    return absl::InternalError(
        absl::StrFormat("personality(%#x): %s", tc.personality(), strerror(errno)));
  }
  prctl(PR_SET_NAME, tc.comm().c_str());
  if (tc.has_child_subreaper() && tc.child_subreaper()) prctl(PR_SET_CHILD_SUBREAPER, 1);

  if (core.has_thread_core()) {
    const auto& th = core.thread_core();
    if (th.has_creds()) {
      if (auto s = PlanCreds(th.creds(), a); !s.ok()) return s;
    }
    if (th.has_sas() && th.sas().ss_size() != 0) {
      stack_t ss{reinterpret_cast<void*>(th.sas().ss_sp()), static_cast<int>(th.sas().ss_flags()),
                 th.sas().ss_size()};
      ss.ss_flags &= ~SS_ONSTACK;
      if (sigaltstack(&ss, nullptr) != 0) {
        return absl::InternalError(absl::StrFormat("sigaltstack: %s", strerror(errno)));
      }
    }
  }
  log::Info("core: pid %d resumes at ip %#x with %d more threads, %d+%d pending signals", ctx.pid,
            a.regs.ip, a.nr_threads, a.nr_shared_signals, a.nr_signals);
  return absl::OkStatus();
}

}  // namespace crpp::resources
