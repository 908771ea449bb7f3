/* clock: the monotonic time every deadline in punchd is measured in. */
#ifndef PUNCHD_CLOCK_H
#define PUNCHD_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: never jumps with the wall clock. */
uint64_t clock_mono_ms(void);

#endif
