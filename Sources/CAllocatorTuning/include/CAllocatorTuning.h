#ifndef MEDLEDGER_ALLOCATOR_TUNING_H
#define MEDLEDGER_ALLOCATOR_TUNING_H

/// Keeps buffers of up to `mmap_threshold` bytes on the heap and up to `trim_threshold` bytes of
/// freed heap for reuse (glibc `mallopt`); does nothing on other C libraries. Returns 1 when applied.
int medledger_tune_allocator(int mmap_threshold, int trim_threshold);

#endif
