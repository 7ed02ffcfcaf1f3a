// Dump side of the TaskCore plugin.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "absl/strings/str_format.h"
#include "arch/x86_64/fpu.h"
#include "arch/x86_64/xsave.h"
#include "core.pb.h"
#include "core/images/image_io.h"
#include "core/images/magic.h"
#include "core/infect/parasite.h"
#include "core/log.h"
#include "core/proc/proc.h"
#include "core/ptrace/task.h"
#include "core/strings.h"
#include "resources/task/core.h"
#include "restorer/restorer_args.h"

namespace crpp::resources {
namespace {

// PTRACE_GET_RSEQ_CONFIGURATION's result (<linux/ptrace.h>, which clashes
// with glibc's <sys/ptrace.h>).
struct RseqConfig {
  uint64_t rseq_abi_pointer;
  uint32_t rseq_abi_size, signature, flags, pad;
};

template <class T>
absl::StatusOr<T> ReadScratch(ptrace::Task& t) {
  T v{};
  if (auto s = t.ReadMemory(t.scratch(), &v, sizeof v); !s.ok()) return s;
  return v;
}

void FillRegs(const user_regs_struct& r, criu::user_x86_regs_entry& g) {
  g.set_r15(r.r15);
  g.set_r14(r.r14);
  g.set_r13(r.r13);
  g.set_r12(r.r12);
  g.set_bp(r.rbp);
  g.set_bx(r.rbx);
  g.set_r11(r.r11);
  g.set_r10(r.r10);
  g.set_r9(r.r9);
  g.set_r8(r.r8);
  g.set_ax(r.rax);
  g.set_cx(r.rcx);
  g.set_dx(r.rdx);
  g.set_si(r.rsi);
  g.set_di(r.rdi);
  g.set_orig_ax(r.orig_rax);
  g.set_ip(r.rip);
  g.set_cs(r.cs);
  g.set_flags(r.eflags);
  g.set_sp(r.rsp);
  g.set_ss(r.ss);
  g.set_fs_base(r.fs_base);
  g.set_gs_base(r.gs_base);
  g.set_ds(r.ds);
  g.set_es(r.es);
  g.set_fs(r.fs);
  g.set_gs(r.gs);
  g.set_mode(criu::NATIVE);
}

void FillSignals(const infect::TaskState& st, criu::task_core_entry& tc) {
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    const infect::SigAction& sa = st.sigactions[sig - 1];
    criu::sa_entry* e = tc.add_sigactions();
    e->set_sigaction(sa.handler);
    e->set_flags(sa.flags);
    e->set_restorer(sa.restorer);
    e->set_mask(sa.mask);
    e->set_compat_sigaction(false);
  }
}

void FillTimers(const infect::TaskState& st, criu::task_core_entry& tc) {
  auto* timers = tc.mutable_timers();
  criu::itimer_entry* which[] = {timers->mutable_real(), timers->mutable_virt(),
                                 timers->mutable_prof()};
  for (int i = 0; i < 3; ++i) {
    const itimerval& it = st.itimers[i];
    which[i]->set_isec(it.it_interval.tv_sec);
    which[i]->set_iusec(it.it_interval.tv_usec);
    which[i]->set_vsec(it.it_value.tv_sec);
    which[i]->set_vusec(it.it_value.tv_usec);
  }
}

// Read inside the task: prlimit on another task of a different uid needs
// CAP_SYS_RESOURCE, which these machines lack; a task may always read its own.
void FillRlimits(const infect::TaskState& st, criu::task_core_entry& tc) {
  auto* rl = tc.mutable_rlimits();
  for (const rlimit& lim : st.rlimits) {
    auto* e = rl->add_rlimits();
    e->set_cur(lim.rlim_cur);
    e->set_max(lim.rlim_max);
  }
}

void AddCaps(uint64_t caps, google::protobuf::RepeatedField<uint32_t>* out) {
  out->Add(static_cast<uint32_t>(caps));
  out->Add(static_cast<uint32_t>(caps >> 32));
}

void FillCreds(const proc::Status& st, uint32_t securebits, criu::creds_entry& creds) {
  creds.set_uid(st.uid[0]);
  creds.set_euid(st.uid[1]);
  creds.set_suid(st.uid[2]);
  creds.set_fsuid(st.uid[3]);
  creds.set_gid(st.gid[0]);
  creds.set_egid(st.gid[1]);
  creds.set_sgid(st.gid[2]);
  creds.set_fsgid(st.gid[3]);
  AddCaps(st.cap_inh, creds.mutable_cap_inh());
  AddCaps(st.cap_prm, creds.mutable_cap_prm());
  AddCaps(st.cap_eff, creds.mutable_cap_eff());
  AddCaps(st.cap_bnd, creds.mutable_cap_bnd());
  creds.set_secbits(securebits);
  for (uint32_t g : st.groups) creds.add_groups(g);
  creds.set_no_new_privs(st.no_new_privs);
}

// The signals queued for thread `tid` (shared: its process's queue), as
// siginfo blobs. They stay queued: PTRACE_PEEKSIGINFO only looks.
absl::Status PeekSignals(pid_t tid, bool shared, criu::signal_queue_entry& out) {
  for (uint64_t off = 0;; off += 16) {
    __ptrace_peeksiginfo_args args{off, shared ? PTRACE_PEEKSIGINFO_SHARED : 0u, 16};
    siginfo_t si[16];
    long n = ::ptrace(PTRACE_PEEKSIGINFO, tid, &args, si);
    if (n < 0) {
      return absl::InternalError(
          absl::StrFormat("pid %d: PTRACE_PEEKSIGINFO: %s", tid, strerror(errno)));
    }
    for (long i = 0; i < n; ++i) {
      out.add_signals()->set_siginfo(
          std::string(reinterpret_cast<const char*>(&si[i]), sizeof si[i]));
    }
    if (out.signals_size() > RESTORER_MAX_SIGNALS) {
      return absl::UnimplementedError(
          absl::StrFormat("pid %d: more than %d pending %s signals: not supported", tid,
                          RESTORER_MAX_SIGNALS, shared ? "process-wide" : "per-thread"));
    }
    if (n < 16) return absl::OkStatus();
  }
}

// What every thread has of its own and can be read from outside it: the
// registers and FPU/vector state, the blocked mask, the robust futex list,
// rseq, scheduling, name and the signals queued for it.
// `stat`: the thread's /proc/TID/stat.
absl::Status FillThread(ptrace::Task& t, const proc::Stat& stat, criu::core_entry& core) {
  pid_t tid = t.tid();
  core.set_mtype(criu::core_entry::X86_64);
  auto* ti = core.mutable_thread_info();
  FillRegs(t.regs(), *ti->mutable_gpregs());
  auto layout = arch::ReadXsaveLayout();
  if (!layout.ok()) return layout.status();
  auto xsave = t.ReadXstate(layout->enabled_size);
  if (!xsave.ok()) return xsave.status();
  if (auto s = arch::XsaveToFpregs(*xsave, *ti->mutable_fpregs()); !s.ok()) return s;

  auto* th = core.mutable_thread_core();
  uint64_t head = 0;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, tid, &head, &len) != 0) {
    return absl::InternalError(
        absl::StrFormat("pid %d: get_robust_list: %s", tid, strerror(errno)));
  }
  th->set_futex_rla(head);
  th->set_futex_rla_len(static_cast<uint32_t>(len));
  th->set_sched_nice(static_cast<int32_t>(stat.nice));
  th->set_sched_policy(static_cast<uint32_t>(sched_getscheduler(tid)));
  th->set_blk_sigset(t.blocked_signals());
  th->set_comm(stat.comm);
  RseqConfig rseq{};
  if (::ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), tid, sizeof rseq,
               &rseq) > 0 &&
      rseq.rseq_abi_pointer != 0) {
    auto* re = th->mutable_rseq_entry();
    re->set_rseq_abi_pointer(rseq.rseq_abi_pointer);
    re->set_rseq_abi_size(rseq.rseq_abi_size);
    re->set_signature(rseq.signature);
  }
  criu::signal_queue_entry own;
  if (auto s = PeekSignals(tid, false, own); !s.ok()) return s;
  if (own.signals_size() > 0) *th->mutable_signals_p() = std::move(own);
  return absl::OkStatus();
}

void SetAltstack(const stack_t& ss, criu::thread_core_entry& th) {
  auto* sase = th.mutable_sas();
  sase->set_ss_sp(reinterpret_cast<uint64_t>(ss.ss_sp));
  sase->set_ss_size(ss.ss_size);
  sase->set_ss_flags(static_cast<uint32_t>(ss.ss_flags));
}

// What only a thread can tell of itself, asked in one injection:
// sigaltstack(NULL, buf), prctl(PR_GET_TID_ADDRESS, buf + 40) and
// prctl(PR_GET_PDEATHSIG, buf + 56), with rdi = buf. The first two results
// are stored at buf + 32 and buf + 48; the last is left in rax. x86-64 code,
// assembled from the instructions beside it.
constexpr uint8_t kThreadProbe[] = {
    0x49, 0x89, 0xfc,              // mov  r12, rdi
    0x31, 0xff,                    // xor  edi, edi
    0x4c, 0x89, 0xe6,              // mov  rsi, r12
    0xb8, 0x83, 0x00, 0x00, 0x00,  // mov  eax, SYS_sigaltstack (131)
    0x0f, 0x05,                    // syscall
    0x49, 0x89, 0x44, 0x24, 0x20,  // mov  [r12 + 32], rax
    0xbf, 0x28, 0x00, 0x00, 0x00,  // mov  edi, PR_GET_TID_ADDRESS (40)
    0x49, 0x8d, 0x74, 0x24, 0x28,  // lea  rsi, [r12 + 40]
    0xb8, 0x9d, 0x00, 0x00, 0x00,  // mov  eax, SYS_prctl (157)
    0x0f, 0x05,                    // syscall
    0x49, 0x89, 0x44, 0x24, 0x30,  // mov  [r12 + 48], rax
    0xbf, 0x02, 0x00, 0x00, 0x00,  // mov  edi, PR_GET_PDEATHSIG (2)
    0x49, 0x8d, 0x74, 0x24, 0x38,  // lea  rsi, [r12 + 56]
    0xb8, 0x9d, 0x00, 0x00, 0x00,  // mov  eax, SYS_prctl (157)
    0x0f, 0x05,                    // syscall
    0xcc,                          // int3
};
static_assert(SYS_sigaltstack == 131 && SYS_prctl == 157 && PR_GET_TID_ADDRESS == 40 &&
              PR_GET_PDEATHSIG == 2);
// Where the probe and its buffer go in the scratch page (its first bytes
// hold the "syscall; int3" of single injected syscalls).
constexpr uint64_t kProbeCode = 64, kProbeData = 1024;
// The probe's buffer, by offset.
constexpr size_t kAltstackAt = 0, kAltstackResultAt = 32, kTidAddressAt = 40, kTidResultAt = 48,
                 kPdeathAt = 56, kProbeDataSize = 64;
static_assert(sizeof(stack_t) <= kAltstackResultAt);

absl::Status WriteCore(const DumpContext& ctx, pid_t tid, const criu::core_entry& core) {
  auto w = images::TypedImageWriter<criu::core_entry>::Create(
      absl::StrFormat("%s/core-%d.img", ctx.images_dir, tid), images::Core());
  if (!w.ok()) return w.status();
  if (auto s = w->Write(core); !s.ok()) return s;
  return w->Close();
}

// A thread besides the main one. What only the thread itself can tell
// (altstack, clear_child_tid address, parent-death signal) comes from
// kThreadProbe run in it, on the main thread's scratch page (one address
// space).
// `probe_written`: the thread probe is in the process's scratch page already.
// `index`: the thread's in ctx.threads.
absl::Status DumpThread(const DumpContext& ctx, ptrace::Task& main, size_t index,
                        const criu::creds_entry& process_creds, bool& probe_written) {
  ptrace::Task& t = *ctx.threads[index];
  pid_t tid = t.tid();
  // What /proc says of the thread: read already by the dump driver, or now.
  absl::StatusOr<proc::Stat> stat;
  absl::StatusOr<proc::Status> status;
  if (ctx.thread_stats != nullptr && ctx.thread_statuses != nullptr) {
    stat = (*ctx.thread_stats)[index];
    status = (*ctx.thread_statuses)[index];
  } else {
    stat = proc::ReadStat(tid);
    status = proc::ReadStatus(tid);
  }
  if (!stat.ok()) return stat.status();
  if (!status.ok()) return status.status();
  criu::core_entry core;
  if (auto s = FillThread(t, *stat, core); !s.ok()) return s;
  auto* th = core.mutable_thread_core();
  FillCreds(*status, process_creds.secbits(), *th->mutable_creds());
  if (th->creds().SerializeAsString() != process_creds.SerializeAsString()) {
    return absl::UnimplementedError(absl::StrFormat(
        "pid %d: thread %d has credentials other than its process's: not supported", ctx.pid, tid));
  }
  if (auto s = t.ShareScratch(main); !s.ok()) return s;
  const uint64_t page = t.scratch();
  if (!probe_written) {
    if (auto s = t.WriteMemory(page + kProbeCode, kThreadProbe, sizeof kThreadProbe); !s.ok()) {
      return s;
    }
    probe_written = true;
  }
  auto last = t.RunStub(page + kProbeCode, page + kProbeData, SYS_sigaltstack);
  if (!last.ok()) return last.status();
  char data[kProbeDataSize];
  if (auto s = t.ReadMemory(page + kProbeData, data, sizeof data); !s.ok()) return s;
  int64_t altstack_result = 0, tid_result = 0;
  memcpy(&altstack_result, data + kAltstackResultAt, 8);
  memcpy(&tid_result, data + kTidResultAt, 8);
  for (const auto& [what, r] : {std::pair<const char*, int64_t>{"sigaltstack", altstack_result},
                                {"PR_GET_TID_ADDRESS", tid_result},
                                {"PR_GET_PDEATHSIG", *last}}) {
    if (r < 0 && r > -4096) {
      return absl::InternalError(
          absl::StrFormat("pid %d: %s: %s", tid, what, strerror(static_cast<int>(-r))));
    }
  }
  stack_t ss{};
  uint64_t tid_address = 0;
  int pdeath = 0;
  memcpy(&ss, data + kAltstackAt, sizeof ss);
  memcpy(&tid_address, data + kTidAddressAt, sizeof tid_address);
  memcpy(&pdeath, data + kPdeathAt, sizeof pdeath);
  SetAltstack(ss, *th);
  th->set_pdeath_sig(static_cast<uint32_t>(pdeath));
  core.mutable_thread_info()->set_clear_tid_addr(tid_address);
  if (auto s = WriteCore(ctx, tid, core); !s.ok()) return s;
  log::Debug("core: pid %d thread %d at ip %#x", ctx.pid, tid, t.regs().rip);
  return absl::OkStatus();
}

}  // namespace

// POSIX timers: /proc/PID/timers lists them (id, signal and value, how they
// notify, clock); their time left and overrun are read inside the task.
absl::Status DumpPosixTimers(ptrace::Task& t, pid_t pid, criu::task_timers_entry& timers) {
  auto text = proc::ReadFile(absl::StrFormat("/proc/%d/timers", pid));
  if (!text.ok()) return text.status();
  criu::posix_timer_entry* e = nullptr;
  for (std::string_view line : Split(*text, '\n')) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), val = Trim(line.substr(colon + 1));
    if (key == "ID") {
      e = timers.add_posix();
      uint32_t id = 0;
      ParseInt(val, id);
      e->set_it_id(id);
    } else if (e == nullptr) {
      continue;
    } else if (key == "signal") {
      std::vector<std::string_view> parts = Split(val, '/');
      uint32_t signo = 0;
      uint64_t value = 0;
      if (parts.size() == 2) {
        ParseInt(parts[0], signo);
        ParseInt(parts[1], value, 16);
      }
      e->set_si_signo(signo);
      e->set_sival_ptr(value);
    } else if (key == "notify") {
      // "signal/pid.N", "thread/tid.N", "none/pid.N" (+ "thread" may carry "/tid")
      uint32_t how = val.starts_with("thread") ? (SIGEV_SIGNAL | SIGEV_THREAD_ID)
                     : val.starts_with("none") ? SIGEV_NONE
                                               : SIGEV_SIGNAL;
      e->set_it_sigev_notify(how);
      size_t dot = val.rfind('.');
      int32_t who = 0;
      if (dot != std::string_view::npos && ParseInt(val.substr(dot + 1), who) &&
          (how & SIGEV_THREAD_ID)) {
        e->set_notify_thread_id(who);
      }
    } else if (key == "ClockID") {
      uint32_t clock = 0;
      ParseInt(val, clock);
      e->set_clock_id(clock);
    }
  }
  for (auto& pt : *timers.mutable_posix()) {
    auto r = t.SyscallOk("timer_gettime", SYS_timer_gettime, pt.it_id(), t.scratch());
    if (!r.ok()) return r.status();
    auto its = ReadScratch<itimerspec>(t);
    if (!its.ok()) return its.status();
    pt.set_isec(its->it_interval.tv_sec);
    pt.set_insec(its->it_interval.tv_nsec);
    pt.set_vsec(its->it_value.tv_sec);
    pt.set_vnsec(its->it_value.tv_nsec);
    auto over = t.SyscallOk("timer_getoverrun", SYS_timer_getoverrun, pt.it_id());
    if (!over.ok()) return over.status();
    pt.set_overrun(static_cast<uint32_t>(*over));
  }
  return absl::OkStatus();
}

namespace {

// A zombie has nothing left but its exit code: CRIU's core for it holds
// only the task's state (dead), the code and its name.
absl::Status DumpZombie(const DumpContext& ctx) {
  criu::core_entry core;
  core.set_mtype(criu::core_entry::X86_64);
  auto* tc = core.mutable_tc();
  tc->set_task_state(kTaskDead);
  tc->set_exit_code(static_cast<uint32_t>(ctx.stat->exit_code));
  tc->set_personality(0);
  tc->set_flags(static_cast<uint32_t>(ctx.stat->flags));
  tc->set_blk_sigset(0);
  tc->set_comm(ctx.stat->comm);
  auto w = images::TypedImageWriter<criu::core_entry>::Create(
      absl::StrFormat("%s/core-%d.img", ctx.images_dir, ctx.pid), images::Core());
  if (!w.ok()) return w.status();
  if (auto s = w->Write(core); !s.ok()) return s;
  log::Info("core: pid %d is a zombie (exit code %#x)", ctx.pid, ctx.stat->exit_code);
  return w->Close();
}

}  // namespace

absl::Status TaskCore::Precheck(DumpContext& ctx) {
  if (ctx.zombie) return absl::OkStatus();
  if (ctx.status->seccomp != 0) {
    return absl::UnimplementedError(
        absl::StrFormat("pid %d runs under seccomp: not supported yet", ctx.pid));
  }
  return absl::OkStatus();
}

absl::Status TaskCore::Dump(DumpContext& ctx) {
  if (ctx.zombie) return DumpZombie(ctx);
  pid_t pid = ctx.pid;
  ptrace::Task& t = *ctx.task;
  // What only the task itself can tell comes from the parasite, in one
  // round trip: the memory plugin's, when it ran (tests may run this plugin
  // alone).
  absl::StatusOr<infect::TaskState> state;
  if (auto known = ctx.task_states.find(pid); known != ctx.task_states.end()) {
    state = *known->second;
  } else {
    auto parasite = infect::Parasite::Infect(t);
    if (!parasite.ok()) return parasite.status();
    state = (*parasite)->GetTaskState();
    absl::Status cured = (*parasite)->Cure();
    if (!state.ok()) return state.status();
    if (!cured.ok()) return cured;
  }
  criu::core_entry core;
  if (auto s = FillThread(t, *ctx.stat, core); !s.ok()) return s;
  core.mutable_thread_info()->set_clear_tid_addr(state->clear_tid_address);

  auto* tc = core.mutable_tc();
  tc->set_task_state(t.was_stopped() ? kTaskStopped : kTaskAlive);
  tc->set_exit_code(0);
  auto pers = proc::ReadFile(absl::StrFormat("/proc/%d/personality", pid));
  uint32_t personality = 0;
  if (pers.ok()) ParseInt(Trim(*pers), personality, 16);
  tc->set_personality(personality);
  tc->set_flags(static_cast<uint32_t>(ctx.stat->flags));
  tc->set_blk_sigset(t.blocked_signals());
  tc->set_comm(ctx.stat->comm);
  FillTimers(*state, *tc);
  if (auto s = DumpPosixTimers(t, pid, *tc->mutable_timers()); !s.ok()) return s;
  FillRlimits(*state, *tc);
  FillSignals(*state, *tc);
  tc->set_child_subreaper(state->child_subreaper);
  criu::signal_queue_entry shared;
  if (auto s = PeekSignals(pid, true, shared); !s.ok()) return s;
  if (shared.signals_size() > 0) *tc->mutable_signals_s() = std::move(shared);

  auto* th = core.mutable_thread_core();
  SetAltstack(state->sigaltstack, *th);
  th->set_pdeath_sig(static_cast<uint32_t>(state->pdeath_signal));
  FillCreds(*ctx.status, static_cast<uint32_t>(state->securebits), *th->mutable_creds());
  if (auto s = WriteCore(ctx, pid, core); !s.ok()) return s;
  bool probe_written = false;
  for (size_t i = 0; i < ctx.threads.size(); ++i) {
    if (auto s = DumpThread(ctx, t, i, th->creds(), probe_written); !s.ok()) return s;
  }
  log::Info("core: pid %d at ip %#x, %d more threads, %d+%d pending signals", pid, t.regs().rip,
            ctx.threads.size(), tc->signals_s().signals_size(), th->signals_p().signals_size());
  return absl::OkStatus();
}

}  // namespace crpp::resources
