/*
 * Moving the vDSO and its data pages ([vvar], [vvar_vclock]) to the
 * addresses the task had. These are special mappings: they move only whole,
 * with mremap, and the vDSO code finds its data at a fixed distance, so all
 * of them must move (the engine checks the sizes match this kernel's).
 *
 * The catch is overlap: the task's addresses may cover where this process
 * has its own areas now (mremap refuses an overlapping move, and a FIXED move
 * onto another area would destroy it). Then every area is first parked in a
 * reserved free range that overlaps no destination, and moved from there.
 */
#include <linux/mman.h>

#include "restorer/restorer_internal.h"

struct area {
  __u64 cur, size, want;
};

static int overlaps(__u64 a, __u64 alen, __u64 b, __u64 blen) {
  return a < b + blen && b < a + alen;
}

static long move(__u64 from, __u64 size, __u64 to) {
  long r = crpp_mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  if (crpp_is_error(r)) return r;
  return (__u64)r == to ? 0 : -EINVAL;
}

/* Maps a PROT_NONE range of `size` bytes that overlaps no destination, at
   *out. The kernel picks free space; a pick that lands on a destination is
   kept mapped for the moment, so the next pick must go elsewhere. */
static long reserve_parking(const struct area* areas, int n, __u64 size, __u64* out) {
  enum { kMaxTries = 8 };
  __u64 rejected[kMaxTries];
  int nr_rejected = 0;
  long result = -ENOMEM;
  for (int t = 0; t < kMaxTries; t++) {
    long r = crpp_mmap(0, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (crpp_is_error(r)) {
      result = r;
      break;
    }
    int clash = 0;
    for (int i = 0; i < n; i++) clash |= overlaps((__u64)r, size, areas[i].want, areas[i].size);
    if (!clash) {
      *out = (__u64)r;
      result = 0;
      break;
    }
    rejected[nr_rejected++] = (__u64)r;
  }
  for (int i = 0; i < nr_rejected; i++) crpp_munmap(rejected[i], size);
  return result;
}

long restorer_move_vdso(const struct restorer_args* a) {
  const struct area all[3] = {
      {a->vvar_cur, a->vvar_size, a->vvar_want},
      {a->vvar_vclock_cur, a->vvar_vclock_size, a->vvar_vclock_want},
      {a->vdso_cur, a->vdso_size, a->vdso_want},
  };
  struct area areas[3];
  int n = 0;
  for (int i = 0; i < 3; i++) {
    if (all[i].size != 0 && all[i].cur != all[i].want) areas[n++] = all[i];
  }
  if (n == 0) return 0;

  int clash = 0;
  __u64 total = 0;
  for (int i = 0; i < n; i++) {
    total += areas[i].size;
    for (int j = 0; j < n; j++) {
      clash |= overlaps(areas[i].want, areas[i].size, areas[j].cur, areas[j].size);
    }
  }
  if (!clash) {
    for (int i = 0; i < n; i++) {
      long r = move(areas[i].cur, areas[i].size, areas[i].want);
      if (r != 0) return r;
    }
    return 0;
  }

  __u64 parking = 0;
  long r = reserve_parking(areas, n, total, &parking);
  if (r != 0) return r;
  /* Each FIXED move replaces its slice of the reservation, and the second
     move takes the slice away again, so nothing of it is left behind. */
  __u64 slot = parking;
  for (int i = 0; i < n; i++) {
    r = move(areas[i].cur, areas[i].size, slot);
    if (r != 0) return r;
    areas[i].cur = slot;
    slot += areas[i].size;
  }
  for (int i = 0; i < n; i++) {
    r = move(areas[i].cur, areas[i].size, areas[i].want);
    if (r != 0) return r;
  }
  return 0;
}
