#!/usr/bin/python3
"""Makes the folders behind tests/data/llama3/rope-freqs-reference.json: random tiny Llama
checkpoints (the bundled SentencePiece tokenizer, F32 safetensors) whose config.json carries
Meta's released rope_scaling settings, for llama.cpp's converter to turn into rope_freqs.weight,
and one with a linear rope_scaling (TextModel's rope.scaling.type and .factor keys).
    llama3_rope_cases.py OUT_ROOT TOKENIZER_MODEL   -> OUT_ROOT/<case>/ for each case below
"""
import json, os, random, shutil, struct, sys

import st_write

CASES = {  # name: (head_dim, heads, rope_theta, factor, low, high, top-level original ctx or None)
    "llama3_1-8b": (128, 2, 500000.0, 8.0, 1.0, 4.0, None),
    "llama3_2-1b": (64, 4, 500000.0, 32.0, 1.0, 4.0, None),
    "custom": (96, 2, 1000000.0, 16.0, 2.0, 8.0, 32768),
    "linear": (64, 4, 10000.0, 2.0, None, None, None),  # {type: linear}: keys only, no rope_freqs
}
root, tok = sys.argv[1], sys.argv[2]
rnd = random.Random(7)
for name, (hd, heads, theta, factor, low, high, orig) in CASES.items():
    dim, vocab, ff = hd * heads, 512, 64
    tensors = [("model.embed_tokens.weight", (vocab, dim)), ("model.norm.weight", (dim,)),
               ("lm_head.weight", (vocab, dim))]
    p = "model.layers.0."
    tensors += [(p + "input_layernorm.weight", (dim,)), (p + "post_attention_layernorm.weight", (dim,)),
                (p + "self_attn.q_proj.weight", (dim, dim)), (p + "self_attn.k_proj.weight", (dim, dim)),
                (p + "self_attn.v_proj.weight", (dim, dim)), (p + "self_attn.o_proj.weight", (dim, dim)),
                (p + "mlp.gate_proj.weight", (ff, dim)), (p + "mlp.up_proj.weight", (ff, dim)),
                (p + "mlp.down_proj.weight", (dim, ff))]
    blobs = []
    for tname, shape in sorted(tensors):
        n = 1
        for d in shape:
            n *= d
        blobs.append((tname, "F32", shape, struct.pack(f"<{n}f", *[rnd.gauss(0, 0.05) for _ in range(n)])))
    out = os.path.join(root, name)
    os.makedirs(out, exist_ok=True)
    st_write.write(os.path.join(out, "model.safetensors"), blobs)
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": dim, "intermediate_size": ff,
           "num_hidden_layers": 1, "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hd,
           "vocab_size": vocab, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": theta,
           "rope_scaling": {"factor": factor, "low_freq_factor": low, "high_freq_factor": high,
                            "original_max_position_embeddings": 8192, "rope_type": "llama3"}
           if low is not None else {"type": "linear", "factor": factor},
           "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
    if orig is not None:
        cfg["original_max_position_embeddings"] = orig
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f)
    shutil.copy(tok, os.path.join(out, "tokenizer.model"))
