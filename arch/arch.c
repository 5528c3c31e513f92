/* The registry of model families (arch.h). */
#include "arch/arch.h"

#include <stdio.h>
#include <string.h>

static const nm_arch *const families[] = {&nm_arch_llama, &nm_arch_gptneox, &nm_arch_gpt2, &nm_arch_qwen3,
                                          &nm_arch_mixtral, &nm_arch_qwen3moe, &nm_arch_phi3, &nm_arch_gemma2,
                                          &nm_arch_qwen2, &nm_arch_gemma3};
#define N_FAMILIES (sizeof families / sizeof families[0])

static const char *const role_names[NM_ROLE_COUNT] = {
    "token_embd", "output_norm", "output", "position_embd", "attn_norm", "attn_q", "attn_k", "attn_v",
    "attn_qkv", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "attn_q_norm", "attn_k_norm",
    "ffn_gate_inp", "ffn_gate_exps", "ffn_down_exps", "ffn_up_exps",
    "post_attention_norm", "post_ffw_norm",
};

const char *nm_role_gguf_name(nm_role r) { return r >= 0 && r < NM_ROLE_COUNT ? role_names[r] : "?"; }

const nm_arch *nm_arch_by_hf_class(const char *hf_class) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        for (const char *const *c = families[i]->hf_classes; *c; c++)
            if (strcmp(*c, hf_class) == 0)
                return families[i];
    return NULL;
}

const nm_arch *nm_arch_by_name(const char *name, size_t len) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strlen(families[i]->name) == len && memcmp(families[i]->name, name, len) == 0)
            return families[i];
    return NULL;
}

const nm_arch *nm_arch_by_name_experts(const char *name, size_t len, bool experts) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strlen(families[i]->name) == len && memcmp(families[i]->name, name, len) == 0 &&
            families[i]->experts == experts)
            return families[i];
    return NULL;
}

static void append(char *buf, size_t size, size_t *len, const char *s) {
    int n = snprintf(buf + *len, size - *len, "%s%s", *len ? ", " : "", s);
    if (n > 0 && (size_t)n < size - *len)
        *len += (size_t)n;
}

void nm_arch_list_hf(char *buf, size_t size) {
    size_t len = 0;
    if (size) buf[0] = '\0';
    for (size_t i = 0; i < N_FAMILIES; i++)
        for (const char *const *c = families[i]->hf_classes; *c; c++)
            if (strcmp(*c, "LLaMAForCausalLM") != 0) /* an old spelling, accepted but not advertised */
                append(buf, size, &len, *c);
}

void nm_arch_list_names(char *buf, size_t size) {
    size_t len = 0;
    if (size) buf[0] = '\0';
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (nm_arch_by_name(families[i]->name, strlen(families[i]->name)) == families[i]) /* once each ("llama") */
            append(buf, size, &len, families[i]->name);
}

const nm_arch_tensor *nm_arch_tensor_of(const nm_arch *a, nm_role r) {
    for (size_t i = 0; i < a->n_tensors; i++)
        if (a->tensors[i].role == r)
            return &a->tensors[i];
    return NULL;
}

void nm_arch_describe(const nm_arch *a, char *buf, size_t size) {
    const nm_arch_tensor *qkv = nm_arch_tensor_of(a, NM_ROLE_ATTN_QKV), *q = nm_arch_tensor_of(a, NM_ROLE_ATTN_Q);
    const nm_arch_tensor *attn = qkv ? qkv : q;
    const char *bias = !attn ? "" : attn->bias == NM_BIAS_REQUIRED ? " with bias" : attn->bias == NM_BIAS_OPTIONAL
                                                                                      ? " (bias optional)" : "";
    snprintf(buf, size, "%s%s, %s%s%s, %s, %s%s FFN, %s residual%s%s%s%s",
             a->norm == NM_NORM_RMS ? "RMSNorm" : "LayerNorm with bias",
             nm_arch_tensor_of(a, NM_ROLE_ATTN_POST_NORM) ? " before and after attention and FFN" : "",
             qkv ? "fused QKV" : "separate Q/K/V", bias,
             nm_arch_tensor_of(a, NM_ROLE_ATTN_Q_NORM) ? ", per-head Q/K RMSNorm" : "",
             a->rope == NM_ROPE_NORMAL ? "rotary on adjacent pairs" : a->rope == NM_ROPE_NEOX ? "NeoX rotary (split halves)"
                                                                                           : "learned positions",
             a->experts ? "mixture of experts (softmax router, top-k), each " : "",
             a->ffn == NM_FFN_SWIGLU ? (a->ffn_up_gated ? "SwiGLU (gate and up fused)" : "SwiGLU")
                 : a->ffn == NM_FFN_GEGLU ? "GELU-gated (GEGLU)" : "GELU",
             a->residual == NM_RESIDUAL_PARALLEL ? "parallel" : "sequential",
             a->tie_by_absence ? ", output tied to the embedding when absent" : "",
             a->embd_scale ? ", embedding × sqrt(width)" : "", a->logit_softcap ? ", attention and output logits soft-capped" : "",
             nm_arch_tensor_of(a, NM_ROLE_OUTPUT_NORM) && nm_arch_tensor_of(a, NM_ROLE_OUTPUT_NORM)->transform == NM_XF_PLUS_ONE
                 ? ", norm weights stored as w - 1" : "");
}
