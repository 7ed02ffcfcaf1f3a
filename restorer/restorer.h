// The engine's side of the hand-over to the restorer blob. Once the args are
// filled (restorer_args.h) and the blob is loaded into the keep area
// (crpp::LoadBlob with blobs::restorer_blob::kBlob), a restored task:
//
//   SetEngineRseq(*args);                  // so the blob can drop glibc's rseq area
//   EnterRestorer(blob_address, args);     // never returns
#ifndef CRPP_RESTORER_RESTORER_H_
#define CRPP_RESTORER_RESTORER_H_

#include <sys/rseq.h>

#include <cstdint>

#include "restorer/restorer_args.h"
#include "restorer/restorer_blob.h"

namespace crpp::restorer {

// Describes the rseq area glibc registered for the calling thread, which the
// blob unregisters before it unmaps the engine (the kernel writes into a
// registered area on every preemption, and kills the task when it cannot).
// glibc publishes the area as thread pointer + __rseq_offset; __rseq_size is
// the size of the fields it uses (20 on Debian 12's glibc) while the
// registration is at least the original 32 bytes, and the kernel only
// unregisters with the registered length (both verified on this machine).
inline void SetEngineRseq(restorer_args& a) {
  if (__rseq_size == 0) {  // not registered (glibc.pthread.rseq=0 or an old kernel)
    a.engine_rseq_abi = a.engine_rseq_len = a.engine_rseq_sig = 0;
    return;
  }
  a.engine_rseq_abi = reinterpret_cast<uint64_t>(__builtin_thread_pointer()) + __rseq_offset;
  a.engine_rseq_len = __rseq_size < 32 ? 32 : __rseq_size;
  a.engine_rseq_sig = RSEQ_SIG;
}

// Jumps to the blob's restorer_entry with `args` in rdi. The stub switches to
// args->stack_top at once, so the caller's stack may be among the ranges the
// blob unmaps. Calling the entry as a plain function pointer works too; this
// only avoids pushing a return address that nothing will use.
[[noreturn]] inline void EnterRestorer(uintptr_t blob_address, restorer_args* args) {
  const uintptr_t entry = blob_address + blobs::restorer_blob::kEntry_restorer_entry;
  asm volatile("jmp *%1" : : "D"(args), "r"(entry) : "memory");
  __builtin_unreachable();
}

}  // namespace crpp::restorer

#endif  // CRPP_RESTORER_RESTORER_H_
