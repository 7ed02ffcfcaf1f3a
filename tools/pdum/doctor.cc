#include "tools/pdum/doctor.h"

#include <linux/capability.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "absl/strings/str_format.h"
#include "core/kerndat/probe.h"
#include "core/proc/proc.h"
#include "core/strings.h"
#include "tools/pdum/args.h"
#include "tools/pdum/console.h"

namespace crpp::pdum {
namespace {

// A capability set of this process from /proc/self/status ("CapEff", "CapBnd").
uint64_t CapSet(const std::string& status, std::string_view field) {
  const std::string key = "\n" + std::string(field) + ":";
  size_t at = status.find(key);
  if (at == std::string::npos) return 0;
  size_t end = status.find('\n', at + 1);
  uint64_t bits = 0;
  ParseInt(Trim(std::string_view(status).substr(at + key.size(), end - at - key.size())), bits, 16);
  return bits;
}

bool Has(uint64_t set, int cap) { return (set >> cap) & 1; }

std::string Exe() {
  auto exe = proc::ReadLink("/proc/self/exe");
  return exe.ok() ? *exe : "pdum-criu";
}

// One capability requirement: any of `caps` in the effective set.
DoctorCheck CapabilityCheck(const std::string& status, const std::string& name,
                            std::initializer_list<std::pair<int, const char*>> caps,
                            const std::string& setcap_names) {
  const uint64_t eff = CapSet(status, "CapEff"), bnd = CapSet(status, "CapBnd");
  DoctorCheck c{"Capabilities", name};
  std::string have, bounded;
  for (const auto& [cap, cap_name] : caps) {
    if (Has(eff, cap)) absl::StrAppend(&have, have.empty() ? "" : ", ", cap_name);
    if (Has(bnd, cap)) absl::StrAppend(&bounded, bounded.empty() ? "" : ", ", cap_name);
  }
  if (!have.empty()) {
    c.ok = true;
    c.detail = have + " in the effective set";
  } else if (bounded.empty()) {
    c.detail = "not in this process's bounding set";
    c.hint = absl::StrFormat(
        "whatever started pdum-criu dropped it from the bounding set (a container runtime, "
        "systemd's CapabilityBoundingSet=, capsh --drop, setpriv --bounding-set), and nothing "
        "started from there gets it back, not even root, sudo or setcap: start pdum-criu from a "
        "process that has it (e.g. docker run --cap-add=%s)",
        setcap_names);
  } else {
    c.detail = "not in the effective set";
    c.hint = absl::StrFormat(
        "run pdum-criu as root (sudo pdum-criu ...), or give the binary the capabilities: sudo "
        "setcap cap_checkpoint_restore,cap_sys_ptrace+ep %s",
        Exe());
  }
  return c;
}

// How to get a kernel feature the engine uses, by probe name.
std::string FeatureHint(std::string_view name) {
  struct Fix {
    std::string_view prefix, hint;
  };
  static constexpr Fix kFixes[] = {
      {"map_files",
       "needs CONFIG_CHECKPOINT_RESTORE=y and CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) in the "
       "initial user namespace: not inside an unprivileged container"},
      {"sock_diag", "load the socket diag modules: sudo modprobe -a unix_diag inet_diag tcp_diag"},
      {"kcmp", "needs a kernel built with CONFIG_KCMP=y (or CONFIG_CHECKPOINT_RESTORE=y)"},
      {"ptrace", "ptrace is refused: see ptrace scope below, seccomp filters, CAP_SYS_PTRACE"},
      {"clone3_set_tid",
       "needs Linux 5.5 or later and CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) over the pid "
       "namespace"},
      {"ipc",
       "/proc/sys/kernel/*_next_id are writable with CAP_CHECKPOINT_RESTORE (or "
       "CAP_SYS_ADMIN) and a read-write /proc/sys"},
      {"tcp_repair", "needs CAP_NET_ADMIN (TCP_REPAIR)"},
      {"pidfd", "needs Linux 5.6 or later (pidfd_open, pidfd_getfd): thaw and beam wait on pidfds"},
      {"tty", "needs /dev/ptmx and devpts mounted at /dev/pts"},
  };
  for (const Fix& f : kFixes) {
    if (name.starts_with(f.prefix)) return std::string(f.hint);
  }
  return absl::StrFormat(
      "needs a kernel built with CONFIG_CHECKPOINT_RESTORE=y; `criu check --feature %s` "
      "(bazel run //tools:criu) runs this probe alone",
      std::string(name));
}

DoctorCheck FeatureCheck(const kerndat::Feature& f, std::string_view section) {
  kerndat::Result r = f.probe();
  DoctorCheck c{std::string(section), std::string(f.name), r.ok};
  c.detail = std::string(f.description);
  if (!r.detail.empty()) absl::StrAppend(&c.detail, r.ok ? " (" : ": ", r.detail, r.ok ? ")" : "");
  if (!r.ok) c.hint = FeatureHint(f.name);
  return c;
}

DoctorCheck PtraceScopeCheck(bool have_ptrace_cap) {
  DoctorCheck c{"System settings", "ptrace scope"};
  auto text = proc::ReadFile("/proc/sys/kernel/yama/ptrace_scope");
  int scope = 0;
  if (!text.ok()) {
    c.ok = true;
    c.detail = "no Yama LSM: ptrace is limited by capabilities only";
    return c;
  }
  if (!ParseInt(Trim(*text), scope)) scope = -1;
  c.ok = scope == 0 || ((scope == 1 || scope == 2) && have_ptrace_cap);
  c.detail = absl::StrFormat("kernel.yama.ptrace_scope = %d%s", scope,
                             scope == 0   ? " (classic)"
                             : scope == 1 ? " (descendants only; CAP_SYS_PTRACE lifts it)"
                             : scope == 2 ? " (CAP_SYS_PTRACE only)"
                                          : " (no ptrace at all)");
  if (!c.ok) {
    c.hint = scope == 3 ? "scope 3 cannot be lowered until the next boot: set "
                          "kernel.yama.ptrace_scope=1 in /etc/sysctl.d and reboot"
                        : "get CAP_SYS_PTRACE (above), or: sudo sysctl kernel.yama.ptrace_scope=0";
  }
  return c;
}

}  // namespace

std::vector<DoctorCheck> RunDoctorChecks() {
  std::vector<DoctorCheck> out;
  const std::string status = proc::ReadFile("/proc/self/status").value_or("");
  out.push_back(CapabilityCheck(
      status, "CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN",
      {{CAP_CHECKPOINT_RESTORE, "CAP_CHECKPOINT_RESTORE"}, {CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}},
      "CHECKPOINT_RESTORE"));
  out.push_back(CapabilityCheck(status, "CAP_SYS_PTRACE", {{CAP_SYS_PTRACE, "CAP_SYS_PTRACE"}},
                                "SYS_PTRACE"));
  const bool caps_ok = out[0].ok && out[1].ok;

  // What `criu check` judges (the engine cannot do without any of them),
  // and the pidfds thaw, beam and the cleanup watcher wait on.
  for (const kerndat::Feature& f : kerndat::AllFeatures()) {
    if (f.basic() || f.name == "pidfd_store") out.push_back(FeatureCheck(f, "Kernel features"));
  }
  if (const kerndat::Feature* f = kerndat::FindFeature("ns_last_pid")) {
    DoctorCheck c = FeatureCheck(*f, "System settings");
    if (!c.ok) {
      c.hint =
          "needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) over the pid namespace and /proc/sys "
          "mounted read-write";
    }
    out.push_back(c);
  }
  out.push_back(PtraceScopeCheck(out[1].ok));
  for (DoctorCheck& c : out) {
    if (!c.ok && !caps_ok && c.section != "Capabilities") {
      c.hint = "may need only the missing capability above; else: " + c.hint;
    }
  }

  DoctorCheck self{"Programs", "pdum-criu"};
  const std::string exe = Exe();
  self.ok = access("/proc/self/exe", X_OK) == 0;
  self.detail = self.ok ? absl::StrFormat(
                              "%s runs the engine itself (no criu, criu-ns, pgrep or sudo "
                              "needed) and starts again as beam's cleanup watcher",
                              exe)
                        : "/proc/self/exe cannot be executed again (beam --cleanup needs it)";
  if (!self.ok) self.hint = "mount /proc (and not with noexec on the binary's filesystem)";
  out.push_back(self);
  return out;
}

int DoctorCommand(const std::vector<std::string>& args) {
  auto parsed = ParseArgs({}, args);
  if (!parsed.ok()) return UsageError("doctor", parsed.status());
  if (parsed->help()) {
    printf(
        "Usage: pdum-criu doctor\n\n"
        "Check that this machine and this process can freeze and thaw: capabilities, the\n"
        "kernel features the engine uses, system settings. Exit 0 when all pass.\n\n%s",
        OptionsHelp({}).c_str());
    return 0;
  }
  printf("Running environment diagnostics...\n");
  bool all_ok = true;
  std::string section;
  for (const DoctorCheck& c : RunDoctorChecks()) {
    if (c.section != section) printf("%s:\n", (section = c.section).c_str());
    printf("%s %s: %s\n", c.ok ? "✓" : "✗", c.name.c_str(), c.detail.c_str());
    if (!c.ok) printf("    hint: %s\n", c.hint.c_str());
    all_ok = all_ok && c.ok;
  }
  printf(all_ok ? "All doctor checks passed!\n"
                : "Resolve the failed checks above before continuing.\n");
  return all_ok ? 0 : kFailureExit;
}

}  // namespace crpp::pdum
