// Runs independent pieces of work on the machine's CPUs.
//
// For the engine's reads of /proc: each is a system call that formats or
// walks kernel state on the CPU of the caller, so reading the files of a tree
// of 100 processes from one thread leaves the other CPUs idle.
#ifndef CRPP_CORE_PARALLEL_H_
#define CRPP_CORE_PARALLEL_H_

#include <cstddef>
#include <functional>

namespace crpp {

// Calls fn(0) ... fn(n - 1), each once, spread over as many threads as there
// are CPUs (at most n; the caller is one of them), and returns when all
// returned. Calls may run in any order and at the same time: fn must only
// touch what belongs to its index, or lock.
void ParallelFor(size_t n, const std::function<void(size_t)>& fn);

}  // namespace crpp

#endif  // CRPP_CORE_PARALLEL_H_
