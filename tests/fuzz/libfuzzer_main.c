/* libfuzzer_main: libFuzzer's entry point for one harness. Built once per
 * target with -DFUZZ_ONE=fuzz_<target>_one (mk/fuzz.mk), so the harnesses
 * themselves stay free of libFuzzer and the replay driver links them all. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"

#ifndef FUZZ_ONE
#error "build with -DFUZZ_ONE=fuzz_<target>_one"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return FUZZ_ONE(data, size);
}
