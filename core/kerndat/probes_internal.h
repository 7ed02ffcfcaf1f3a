// The probe functions behind AllFeatures(), one per feature. Internal.
#ifndef CRPP_CORE_KERNDAT_PROBES_INTERNAL_H_
#define CRPP_CORE_KERNDAT_PROBES_INTERNAL_H_

#include "core/kerndat/probe.h"

namespace crpp::kerndat::internal {

// probe_process.cc
Result ProbePtraceSeize();
Result ProbePtracePeeksiginfo();
Result ProbeSeccompSuspend();
Result ProbeSeccompFilters();
Result ProbeGetRseqConf();
Result ProbeClone3SetTid();
Result ProbeNsLastPid();
Result ProbePidfdStore();
Result ProbeNsPid();
Result ProbeSigqueueinfo();

// probe_memory.cc
Result ProbeMapFiles();
Result ProbeMemfd();
Result ProbeMemfdHugetlb();
Result ProbePagemap();
Result ProbeMemDirtyTrack();
Result ProbePagemapScan();
Result ProbeUffd();
Result ProbeUffdNoncoop();
Result ProbeUffdWpAsync();
Result ProbeAioRemap();
Result ProbeVmspliceUnaligned();

// probe_vdso.cc
Result ProbeVdsoLayout();
Result ProbeVdsoMremap();
Result ProbeCanMapVdso();
Result ProbeCompatCr();

// probe_net.cc
Result ProbeSockDiag();
Result ProbePacketDiag();
Result ProbeNetlinkDiag();
Result ProbeNetDiagRaw();
Result ProbeNsid();

// probe_sockopt.cc
Result ProbeTcpRepair();
Result ProbeTcpRepairWindow();
Result ProbeTcpHalfClosed();
Result ProbeSockPeekOff();
Result ProbeSoGets();
Result ProbeSockoptBufLock();
Result ProbeSkNs();
Result ProbeSkUnixFile();
Result ProbeTun();
Result ProbeTunNs();

// probe_ns.cc
Result ProbeUserns();
Result ProbePidns();
Result ProbeNetns();
Result ProbeMntns();
Result ProbeIpcns();
Result ProbeUtsns();
Result ProbeCgroupns();
Result ProbeTimens();

// probe_files.cc
Result ProbeFdinfoExt();
Result ProbeMntId();
Result ProbeFdinfoLock();
Result ProbeTimerfd();
Result ProbeTty();
Result ProbePosixTimers();
Result ProbeLoginuid();
Result ProbeFcntlOwnerUids();
Result ProbeProcStat();
Result ProbeIpcSysctls();

// probe_misc.cc
Result ProbeKcmp();
Result ProbeKcmpEpoll();
Result ProbeXsaveSize();
Result ProbeSeccomp();
Result ProbeOpenat2();
Result ProbePrctlMmMap();
Result ProbeMoveMountSetGroup();
Result ProbeAutofs();

}  // namespace crpp::kerndat::internal

#endif  // CRPP_CORE_KERNDAT_PROBES_INTERNAL_H_
