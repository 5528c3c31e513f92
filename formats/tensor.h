/* ggml tensor types (FORMATS.md §2) and element conversions between f32, f16 and bf16.
 *
 * Conversions come as a scalar reference (bit-exact with llama.cpp, FORMATS.md §3.0) and
 * SIMD versions chosen at run time (tensor_avx2.c, tensor_neon.c) tested bit-identical to it. */
#ifndef NOMOAT_TENSOR_H
#define NOMOAT_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16,
    GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18,
    GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22,
    GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_MXFP4 = 39,
    GGML_TYPE_COUNT = 40, /* ids >= this are unknown to nomoat */
} ggml_type;

typedef struct ggml_type_info {
    const char *name;     /* "F32", "Q4_K", ... ; NULL for removed/unknown ids */
    uint32_t block_size;  /* elements per block; 0 = invalid id */
    uint32_t type_size;   /* bytes per block */
    bool quantized;
} ggml_type_info;

/* NULL when the id is unknown or removed (4, 5, 31-33, 36-38, >= GGML_TYPE_COUNT). */
const ggml_type_info *ggml_type_get(uint32_t type);
const char *ggml_type_name(uint32_t type); /* "?" when unknown */
/* Case-insensitive lookup by name ("q4_k", "F16"); returns -1 if unknown. */
int ggml_type_from_name(const char *name);

/* Bytes of a row of n elements; -1 if n is not a multiple of the block size or overflows. */
int ggml_row_size(uint32_t type, uint64_t n, size_t *out);
/* Bytes of a tensor of ne[0..3]; -1 on invalid type, bad ne[0] or overflow. */
int ggml_tensor_size(uint32_t type, const int64_t ne[4], size_t *out);

/* Element types of source checkpoints (safetensors dtypes, torch storages), shared by the
 * safetensors and torch readers so the converter treats both alike. */
typedef enum nm_dtype {
    NM_DTYPE_UNKNOWN = 0,
    NM_DTYPE_BOOL, NM_DTYPE_U8, NM_DTYPE_I8, NM_DTYPE_I16, NM_DTYPE_U16, NM_DTYPE_I32, NM_DTYPE_U32,
    NM_DTYPE_I64, NM_DTYPE_U64, NM_DTYPE_F16, NM_DTYPE_BF16, NM_DTYPE_F32, NM_DTYPE_F64,
    NM_DTYPE_F8_E5M2, NM_DTYPE_F8_E4M3, NM_DTYPE_F8_E8M0, NM_DTYPE_C64,
    NM_DTYPE_F6_E2M3, NM_DTYPE_F6_E3M2, NM_DTYPE_F4,
    NM_DTYPE_COUNT
} nm_dtype;

/* "F32", "BF16", ... (safetensors spelling). */
const char *nm_dtype_name(nm_dtype dtype);
nm_dtype nm_dtype_from_name(const char *name); /* exact safetensors spelling; UNKNOWN if none */
/* Size in bits of one element (4 for F4, 6 for F6_*); 0 for UNKNOWN. */
unsigned nm_dtype_bits(nm_dtype dtype);

/* ---- scalar element conversions (reference) ---- */
uint16_t nm_f32_to_f16(float f);
float nm_f16_to_f32(uint16_t h);
uint16_t nm_f32_to_bf16(float f);
float nm_bf16_to_f32(uint16_t h);

/* ---- row conversions; dispatch to SIMD when the CPU has it ---- */
void nm_f32_to_f16_row(const float *src, uint16_t *dst, size_t n);
void nm_f16_to_f32_row(const uint16_t *src, float *dst, size_t n);
void nm_f32_to_bf16_row(const float *src, uint16_t *dst, size_t n);
void nm_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n);
/* Scalar references of the same (tests and benchmarks compare against these). */
void nm_f32_to_f16_row_ref(const float *src, uint16_t *dst, size_t n);
void nm_f16_to_f32_row_ref(const uint16_t *src, float *dst, size_t n);
void nm_f32_to_bf16_row_ref(const float *src, uint16_t *dst, size_t n);
void nm_bf16_to_f32_row_ref(const uint16_t *src, float *dst, size_t n);

/* BF16 -> F16 in one pass, what bf16 -> f32 (exact) -> f16 (nearest, ties to even) gives, and
 * whether the row holds a NaN (then the caller reports it with nm_find_nan_bf16; the output of
 * such a row is not meaningful). The converter's hot loop: one read of the source, no F32
 * scratch row. */
bool nm_bf16_to_f16_row(const uint16_t *src, uint16_t *dst, size_t n);
bool nm_bf16_to_f16_row_ref(const uint16_t *src, uint16_t *dst, size_t n);

/* NaN policy: index of the first NaN in the row, or -1 if there is none. */
int64_t nm_find_nan_f32(const float *src, size_t n);
int64_t nm_find_nan_f16(const uint16_t *src, size_t n);
int64_t nm_find_nan_bf16(const uint16_t *src, size_t n);

#endif
