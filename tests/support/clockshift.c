/* A process's wall clock moved by VIGIL_CLOCK_SHIFT_MS (LD_PRELOAD), for tests of clock skew.
 * Debian's libfaketime shifts clock_gettime but not C11 cnd_timedwait, so librdkafka's timed waits
 * (absolute wall-clock deadlines) would last as long as the shift; here both move together. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <threads.h>
#include <time.h>

static long long shift_ns(void) {
    static long long ns = -1;
    if (ns == -1) {
        const char *v = getenv("VIGIL_CLOCK_SHIFT_MS");
        ns = v ? atoll(v) * 1000000LL : 0;
    }
    return ns;
}

static void add(struct timespec *ts, long long ns) {
    long long t = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + ns;
    ts->tv_sec = t / 1000000000LL;
    ts->tv_nsec = t % 1000000000LL;
}

static int wall(clockid_t c) {
    return c == CLOCK_REALTIME || c == CLOCK_REALTIME_COARSE || c == CLOCK_TAI;
}

int clock_gettime(clockid_t c, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(c, ts);
    if (r == 0 && wall(c)) add(ts, shift_ns());
    return r;
}

int timespec_get(struct timespec *ts, int base) {
    if (base != TIME_UTC || clock_gettime(CLOCK_REALTIME, ts) != 0) return 0;
    return base;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

int cnd_timedwait(cnd_t *c, mtx_t *m, const struct timespec *until) {
    static int (*real)(cnd_t *, mtx_t *, const struct timespec *);
    if (!real) real = dlsym(RTLD_NEXT, "cnd_timedwait");
    struct timespec t = *until;
    add(&t, -shift_ns());
    return real(c, m, &t);
}
