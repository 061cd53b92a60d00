/* deadline.h: monotonic milliseconds for the tests' waits, shared by the
 * test-support code (header-only: each user is its own small program). */
#ifndef AGENTD_TESTS_SUPPORT_DEADLINE_H
#define AGENTD_TESTS_SUPPORT_DEADLINE_H

#include <limits.h>
#include <stdint.h>
#include <time.h>

static inline int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What is left until deadline (from now_ms), 0 once it passed. */
static inline int remaining_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - now_ms();

    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

#endif
