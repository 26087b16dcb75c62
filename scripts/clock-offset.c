// A wall clock off by minutes, for the clock-skew fault tests (Tests/MedLedgerTests/ClockSkewTests.swift).
//
// LD_PRELOAD this into a process to move CLOCK_REALTIME, as the program reads it through
// clock_gettime, gettimeofday or time, by MEDLEDGER_CLOCK_OFFSET_MS milliseconds (negative: behind).
// Monotonic and boot-time clocks and every kernel timer are left alone, as with a real clock that
// is simply set wrong. The tests compile it with the toolchain's clang:
//   clang -shared -fPIC -O2 -o clock-offset.so scripts/clock-offset.c -ldl
//
// Not libfaketime: its timerfd_settime hook shifts absolute CLOCK_MONOTONIC/BOOTTIME timers by the
// offset even with FAKETIME_DONT_FAKE_MONOTONIC=1, so libdispatch's timers (every Swift Task.sleep)
// fire late by the offset when it is negative and re-arm in a busy loop when it is positive (a
// full core: 66,773 timerfd_settime calls in 3 s under FAKETIME=+2m, libfaketime 0.9.10).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long offset_ns(void) {
    static long long offset;
    static int ready;
    if (!ready) {
        const char *text = getenv("MEDLEDGER_CLOCK_OFFSET_MS");
        offset = text ? atoll(text) * 1000000LL : 0;
        ready = 1;
    }
    return offset;
}

static void shift(struct timespec *ts) {
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int result = real(clock, ts);
    if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shift(ts);
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    (void)tz;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
