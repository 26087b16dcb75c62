#include "CAllocatorTuning.h"
#if defined(__linux__) && __has_include(<malloc.h>)
#include <malloc.h>
#endif

int medledger_tune_allocator(int mmap_threshold, int trim_threshold) {
    // __GLIBC__ comes from a libc header: it is tested only after <malloc.h> was included.
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
    return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
#else
    (void)mmap_threshold;
    (void)trim_threshold;
    return 0;
#endif
}
