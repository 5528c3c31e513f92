/* Per-tensor type choice of llama-quantize (FORMATS.md §5.1–5.4): which tensors are
 * quantized, to which type, in which order. Pure logic on names and shapes, no I/O. */
#ifndef NOMOAT_QUANTIZE_RECIPE_H
#define NOMOAT_QUANTIZE_RECIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* llama_ftype numbers (FORMATS.md §2.2). */
enum {
    QT_FTYPE_ALL_F32 = 0,
    QT_FTYPE_F16 = 1,
    QT_FTYPE_Q4_0 = 2,
    QT_FTYPE_Q4_1 = 3,
    QT_FTYPE_Q8_0 = 7,
    QT_FTYPE_Q5_0 = 8,
    QT_FTYPE_Q5_1 = 9,
    QT_FTYPE_Q2_K = 10,
    QT_FTYPE_Q3_K_S = 11,
    QT_FTYPE_Q3_K_M = 12,
    QT_FTYPE_Q3_K_L = 13,
    QT_FTYPE_Q4_K_S = 14,
    QT_FTYPE_Q4_K_M = 15,
    QT_FTYPE_Q5_K_S = 16,
    QT_FTYPE_Q5_K_M = 17,
    QT_FTYPE_Q6_K = 18,
    QT_FTYPE_IQ2_XXS = 19,
    QT_FTYPE_IQ2_XS = 20,
    QT_FTYPE_Q2_K_S = 21,
    QT_FTYPE_IQ3_XS = 22,
    QT_FTYPE_IQ3_XXS = 23,
    QT_FTYPE_IQ1_S = 24,
    QT_FTYPE_IQ4_NL = 25,
    QT_FTYPE_IQ3_S = 26,
    QT_FTYPE_IQ3_M = 27,
    QT_FTYPE_IQ2_S = 28,
    QT_FTYPE_IQ2_M = 29,
    QT_FTYPE_IQ4_XS = 30,
    QT_FTYPE_IQ1_M = 31,
    QT_FTYPE_BF16 = 32,
    QT_FTYPE_TQ1_0 = 36,
    QT_FTYPE_TQ2_0 = 37,
};

typedef struct qt_ftype {
    const char *name;      /* llama-quantize's spelling: "Q4_K_M" */
    uint32_t ftype;        /* general.file_type */
    uint32_t default_type; /* ggml_type */
    const char *note;      /* one-line description for --help */
} qt_ftype;

/* Case-insensitive; accepts the aliases Q4_K, Q5_K, Q3_K. NULL when unknown. COPY is its own
 * entry (qt_ftype_is_copy): tensors copied unchanged, general.file_type kept from the input. */
const qt_ftype *qt_ftype_from_name(const char *name);
const qt_ftype *qt_ftype_from_id(uint32_t ftype);
bool qt_ftype_is_copy(const qt_ftype *ft);
/* The table, terminated by an entry with name == NULL. */
const qt_ftype *qt_ftype_list(void);

/* What the mixture rules need to know about the model (from its metadata). */
typedef struct qt_model {
    bool falcon;        /* general.architecture == "falcon" */
    bool llama_70b;     /* llama with 80 layers and n_head != n_head_kv */
    uint32_t n_layer;   /* <arch>.block_count */
    uint32_t n_expert;  /* <arch>.expert_count, 0 when absent */
    uint32_t n_gqa;     /* n_head / n_head_kv, 0 when unknown */
} qt_model;

typedef struct qt_options {
    bool pure;
    bool leave_output;
    bool has_imatrix;
    int output_type;      /* ggml_type, or -1 */
    int token_embd_type;  /* ggml_type, or -1 */
    bool only_copy;       /* COPY: no tensor is converted */
} qt_options;

typedef struct qt_tensor {
    /* in */
    const char *name;
    uint32_t n_dims;
    int64_t ne[4];
    uint32_t type;       /* input ggml_type */
    size_t index;        /* caller's index (input order) */
    /* out */
    uint32_t new_type;   /* = type when not converted */
    bool convert;        /* new_type != type and the tensor is eligible */
    bool fallback;       /* the shape fallback of §5.4 was applied */
} qt_tensor;

/* llama-quantize's output order (§5.6): non-layer tensors by name, then blk.0.*, blk.1.*, ... */
int qt_tensor_order(const char *a, const char *b);
void qt_sort_tensors(qt_tensor *t, size_t n);

/* Sorts t into output order and fills new_type/convert/fallback for every tensor.
 * Fails (naming the tensor) when a tensor's row length fits neither the chosen type nor a
 * fallback, or with --pure when it does not fit the type. */
int qt_plan(qt_tensor *t, size_t n, const qt_model *model, const qt_ftype *ft, const qt_options *opt,
            nm_error *err);

/* Rewrites control bytes in a message as \xNN so a refusal always prints as one line (tensor and
 * imatrix entry names come from untrusted files). */
void qt_message_escape(nm_error *err);

/* llama-quantize's tensor_requires_imatrix: whether quantizing tensor `name` to `type` within
 * file type `ftype` needs importance data (the lattice i-quants, and Q2_K within Q2_K_S); never
 * for token_embd.weight and output.weight. */
bool qt_tensor_requires_imatrix(const char *name, uint32_t type, uint32_t ftype);

/* Eligibility of §5.1 (without the "COPY mode" and --leave-output-tensor parts). */
bool qt_tensor_eligible(const char *name, uint32_t n_dims);

#endif
