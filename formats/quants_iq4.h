/* IQ4_NL / IQ4_XS level table (formats/quants_iq4.c), shared with the dot kernels. */
#ifndef NOMOAT_QUANTS_IQ4_H
#define NOMOAT_QUANTS_IQ4_H

#include <stdint.h>

/* The 16 levels a 4-bit IQ4_NL/IQ4_XS index selects (ggml's kvalues_iq4nl). */
extern const int8_t nm_iq4nl_values[16];

#endif
