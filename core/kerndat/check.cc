// The feature table and the `check` command's text.
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/kerndat/probe.h"
#include "core/kerndat/probes_internal.h"

namespace crpp::kerndat {
namespace {

using namespace internal;  // NOLINT: the Probe* functions

// Debian's Abseil has its own string_view type, distinct from std's.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
constexpr Category kBasic = Category::kBasic;
constexpr Category kExtra = Category::kExtra;
constexpr Category kExperimental = Category::kExperimental;

// Basic ones first: criu's Category 1 list, plus what crpp itself cannot do
// without (seizing tasks, choosing pids with clone3, the vDSO and xsave layout).
constexpr Feature kFeatures[] = {
    {"map_files", "/proc/PID/map_files links to mapped files", kBasic, ProbeMapFiles},
    {"sock_diag", "NETLINK_SOCK_DIAG dumps of unix and inet sockets", kBasic, ProbeSockDiag},
    {"sock_peek_off", "SO_PEEK_OFF socket option", kBasic, ProbeSockPeekOff},
    {"kcmp", "kcmp() comparison of kernel objects", kBasic, ProbeKcmp},
    {"prctl_mm_map", "prctl(PR_SET_MM_MAP) of a whole memory layout", kBasic, ProbePrctlMmMap},
    {"fcntl_owner_uids", "fcntl(F_GETOWNER_UIDS)", kBasic, ProbeFcntlOwnerUids},
    {"proc_stat", "/proc/PID/stat with the memory layout fields", kBasic, ProbeProcStat},
    {"tcp_repair", "TCP_REPAIR mode of TCP sockets", kBasic, ProbeTcpRepair},
    {"fdinfo_ext", "/proc/PID/fdinfo of eventfd, epoll, signalfd and inotify", kBasic,
     ProbeFdinfoExt},
    {"vmsplice_unaligned", "vmsplice() of an unaligned buffer", kBasic, ProbeVmspliceUnaligned},
    {"tty", "pty lock state (TIOCSPTLCK, TIOCGPTLCK)", kBasic, ProbeTty},
    {"so_gets", "getsockopt(SO_GET_FILTER, SO_BINDTODEVICE)", kBasic, ProbeSoGets},
    {"ipc", "/proc/sys/kernel/{sem,msg,shm}_next_id", kBasic, ProbeIpcSysctls},
    {"sigqueueinfo", "rt_sigqueueinfo() with a positive si_code", kBasic, ProbeSigqueueinfo},
    {"ptrace_peeksiginfo", "ptrace(PTRACE_PEEKSIGINFO, PTRACE_GETSIGMASK)", kBasic,
     ProbePtracePeeksiginfo},
    {"vdso_mremap", "mremap() of the vDSO and its data pages", kBasic, ProbeVdsoMremap},
    {"ptrace_seize", "ptrace(PTRACE_SEIZE, PTRACE_INTERRUPT) of a child", kBasic, ProbePtraceSeize},
    {"clone3_set_tid", "clone3() with set_tid (choosing the new pid)", kBasic, ProbeClone3SetTid},
    {"pagemap", "/proc/PID/pagemap", kBasic, ProbePagemap},
    {"memfd", "memfd_create() with sealing", kBasic, ProbeMemfd},
    {"xsave_size", "size of the xsave area (CPUID leaf 0xD)", kBasic, ProbeXsaveSize},
    {"vdso", "vDSO layout ([vvar], [vvar_vclock], [vdso])", kBasic, ProbeVdsoLayout},

    // Needed for some process trees only: `check --extra`.
    {"mem_dirty_track", "soft-dirty memory tracking (pagemap bit 55)", kExtra, ProbeMemDirtyTrack},
    {"pagemap_scan", "ioctl(PAGEMAP_SCAN) on /proc/PID/pagemap", kExtra, ProbePagemapScan},
    {"uffd_wp_async", "dirty tracking with userfaultfd WP_ASYNC and PAGEMAP_SCAN", kExtra,
     ProbeUffdWpAsync},
    {"uffd", "userfaultfd()", kExtra, ProbeUffd},
    {"uffd-noncoop", "non-cooperative userfaultfd (fork, remap, remove, unmap events)", kExtra,
     ProbeUffdNoncoop},
    {"memfd_hugetlb", "memfd_create(MFD_HUGETLB)", kExtra, ProbeMemfdHugetlb},
    {"aio_remap", "mremap() of an AIO ring", kExtra, ProbeAioRemap},
    {"can_map_vdso", "arch_prctl(ARCH_MAP_VDSO_64) mapping a new vDSO", kExtra, ProbeCanMapVdso},
    {"timerfd", "timerfd fdinfo and TFD_IOC_SET_TICKS", kExtra, ProbeTimerfd},
    {"posix_timers", "/proc/PID/timers", kExtra, ProbePosixTimers},
    {"mnt_id", "mnt_id in /proc/PID/fdinfo", kExtra, ProbeMntId},
    {"fdinfo_lock", "file locks in /proc/PID/fdinfo", kExtra, ProbeFdinfoLock},
    {"loginuid", "unsetting and restoring /proc/PID/loginuid", kExtra, ProbeLoginuid},
    {"tun", "/dev/net/tun", kExtra, ProbeTun},
    {"tun_ns", "ioctl(TUNGETDEVNETNS) on a TUN device", kExtra, ProbeTunNs},
    {"tcp_repair_window", "TCP_REPAIR_WINDOW socket option", kExtra, ProbeTcpRepairWindow},
    {"tcp_half_closed", "TCP_REPAIR on a half-closed connection", kExtra, ProbeTcpHalfClosed},
    {"sk_ns", "ioctl(SIOCGSKNS): a socket's network namespace", kExtra, ProbeSkNs},
    {"sk_unix_file", "ioctl(SIOCUNIXFILE): a unix socket's file", kExtra, ProbeSkUnixFile},
    {"sockopt_buf_lock", "SO_BUF_LOCK socket option", kExtra, ProbeSockoptBufLock},
    {"net_diag_raw", "NETLINK_SOCK_DIAG dumps of raw sockets", kExtra, ProbeNetDiagRaw},
    {"packet_diag", "NETLINK_SOCK_DIAG dumps of packet sockets", kExtra, ProbePacketDiag},
    {"netlink_diag", "NETLINK_SOCK_DIAG dumps of netlink sockets", kExtra, ProbeNetlinkDiag},
    {"nsid", "RTM_GETNSID: network namespace ids", kExtra, ProbeNsid},
    {"kcmp_epoll", "kcmp(KCMP_EPOLL_TFD)", kExtra, ProbeKcmpEpoll},
    {"seccomp", "seccomp filters", kExtra, ProbeSeccomp},
    {"seccomp_suspend", "ptrace(PTRACE_O_SUSPEND_SECCOMP)", kExtra, ProbeSeccompSuspend},
    {"seccomp_filters", "ptrace(PTRACE_SECCOMP_GET_FILTER)", kExtra, ProbeSeccompFilters},
    {"get_rseq_conf", "ptrace(PTRACE_GET_RSEQ_CONFIGURATION)", kExtra, ProbeGetRseqConf},
    {"pidfd_store", "pidfd_open() and pidfd_getfd()", kExtra, ProbePidfdStore},
    {"ns_pid", "NSpid in /proc/PID/status", kExtra, ProbeNsPid},
    {"ns_last_pid", "writable /proc/sys/kernel/ns_last_pid", kExtra, ProbeNsLastPid},
    {"openat2", "openat2() with RESOLVE_* flags", kExtra, ProbeOpenat2},
    {"move_mount_set_group", "move_mount(MOVE_MOUNT_SET_GROUP)", kExtra, ProbeMoveMountSetGroup},
    {"userns", "user namespaces", kExtra, ProbeUserns},
    {"pidns", "PID namespaces", kExtra, ProbePidns},
    {"netns", "network namespaces", kExtra, ProbeNetns},
    {"mntns", "mount namespaces", kExtra, ProbeMntns},
    {"ipcns", "IPC namespaces", kExtra, ProbeIpcns},
    {"utsns", "UTS namespaces", kExtra, ProbeUtsns},
    {"cgroupns", "cgroup namespaces", kExtra, ProbeCgroupns},
    {"timens", "time namespaces", kExtra, ProbeTimens},

    // `check --experimental`.
    {"autofs", "autofs mounts showing pipe_ino", kExperimental, ProbeAutofs},
    {"compat_cr", "arch_prctl(ARCH_MAP_VDSO_32): 32-bit tasks", kExperimental, ProbeCompatCr},
};

constexpr std::string_view kLooksGood = "Looks good.";
constexpr std::string_view kNotGood = "Does not look good.";
constexpr std::string_view kMaybe =
    "Looks good but some kernel features are missing\n"
    "which, depending on your process tree, may cause\n"
    "dump or restore failure.";

std::string KnownNames() {
  return absl::StrJoin(AllFeatures(), " ", [](std::string* out, const Feature& f) {
    absl::StrAppend(out, Sv(f.name));
  });
}

}  // namespace

absl::Span<const Feature> AllFeatures() { return kFeatures; }

const Feature* FindFeature(std::string_view name) {
  for (const Feature& f : kFeatures) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

Result Probe(const Feature& feature) { return feature.probe(); }

std::string FormatLine(const Feature& feature, const Result& result) {
  if (result.ok) {
    return absl::StrCat("✓ ", Sv(feature.name), ": ", Sv(feature.description),
                        result.detail.empty() ? "" : absl::StrCat(" (", result.detail, ")"));
  }
  return absl::StrCat("✗ ", Sv(feature.name), ": ", Sv(feature.description), ": ",
                      result.detail.empty() ? "not supported" : result.detail);
}

constexpr std::string_view kShownInPlainCheck[] = {"mem_dirty_track", "pagemap_scan",
                                                   "uffd_wp_async", "userns", "timens"};

CheckReport RunCheck(bool all, bool extra, bool experimental) {
  CheckReport report;
  bool basic_missing = false, other_missing = false;
  for (const Feature& f : kFeatures) {
    if ((f.extra() && !(all || extra)) || (f.experimental() && !(all || experimental))) continue;
    Result r = f.probe();
    absl::StrAppend(&report.text, FormatLine(f, r), "\n");
    if (!r.ok) (f.basic() ? basic_missing : other_missing) = true;
  }
  if (!all && !extra) {
    // Plain `check` judges only basic features, as criu's does, but also shows
    // how the ones that decide between the engine's strategies stand (dirty
    // tracking for incremental dumps, lazy pages); they do not change the verdict.
    absl::StrAppend(&report.text, "Optional features (not needed for a basic dump and restore):\n");
    for (std::string_view name : kShownInPlainCheck) {
      const Feature* f = FindFeature(name);
      if (f != nullptr) absl::StrAppend(&report.text, FormatLine(*f, f->probe()), "\n");
    }
  }
  std::string_view verdict = basic_missing ? kNotGood : other_missing ? kMaybe : kLooksGood;
  absl::StrAppend(&report.text, Sv(verdict), "\n");
  report.exit_code = basic_missing || other_missing ? 1 : 0;
  return report;
}

CheckReport RunFeatureCheck(std::string_view name) {
  if (name == "list") return CheckReport{KnownNames() + "\n", 0};
  const Feature* f = FindFeature(name);
  if (f == nullptr) {
    return CheckReport{
        absl::StrCat("Unknown feature ", Sv(name), "\nKnown features: ", KnownNames(), "\n"), 1};
  }
  Result r = f->probe();
  CheckReport report{FormatLine(*f, r) + "\n", r.ok ? 0 : 1};
  if (r.ok) absl::StrAppend(&report.text, Sv(f->name), " is supported\n");
  return report;
}

}  // namespace crpp::kerndat
