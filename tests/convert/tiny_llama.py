#!/usr/bin/python3
"""Writes a tiny random Llama checkpoint folder (Hugging Face layout, one F32 or F16
model.safetensors) for nomoat-convert's layout tests: MHA or GQA, tied or untied embeddings,
LlamaForCausalLM or MistralForCausalLM. Standard library only. The tokenizer.model is copied
from the bundled model; vocab_size 512 keeps its first 512 pieces.
    tiny_llama.py OUT_DIR TOKENIZER_MODEL [--mha] [--tied] [--arch NAME] [--dtype F32|F16]
"""
import json, os, random, shutil, struct, sys

import st_write

args = sys.argv[1:]
out, tok = args[0], args[1]
mha, tied = "--mha" in args, "--tied" in args
arch = args[args.index("--arch") + 1] if "--arch" in args else "LlamaForCausalLM"
dtype = args[args.index("--dtype") + 1] if "--dtype" in args else "F32"
dim, layers, heads, ff, vocab = 64, 2, 4, 96, 512
kv = heads if mha else 2
hd = dim // heads
rnd = random.Random(1234)
tensors = [("model.embed_tokens.weight", (vocab, dim)), ("model.norm.weight", (dim,))]
if not tied:
    tensors.append(("lm_head.weight", (vocab, dim)))
for l in range(layers):
    p = f"model.layers.{l}."
    tensors += [(p + "input_layernorm.weight", (dim,)), (p + "post_attention_layernorm.weight", (dim,)),
                (p + "self_attn.q_proj.weight", (heads * hd, dim)), (p + "self_attn.k_proj.weight", (kv * hd, dim)),
                (p + "self_attn.v_proj.weight", (kv * hd, dim)), (p + "self_attn.o_proj.weight", (dim, heads * hd)),
                (p + "mlp.gate_proj.weight", (ff, dim)), (p + "mlp.up_proj.weight", (ff, dim)),
                (p + "mlp.down_proj.weight", (dim, ff))]
tensors.sort()
blobs = []
for name, shape in tensors:
    n = 1
    for d in shape:
        n *= d
    vals = [rnd.gauss(0, 0.05) for _ in range(n)]
    blobs.append((name, dtype, shape, struct.pack(f"<{n}f", *vals) if dtype == "F32" else struct.pack(f"<{n}e", *vals)))
os.makedirs(out, exist_ok=True)
st_write.write(os.path.join(out, "model.safetensors"), blobs)
cfg = {"architectures": [arch], "hidden_size": dim, "intermediate_size": ff, "num_hidden_layers": layers,
       "num_attention_heads": heads, "vocab_size": vocab, "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
       "rope_theta": 500000.0, "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2}
if not mha:
    cfg["num_key_value_heads"] = kv
json.dump(cfg, open(os.path.join(out, "config.json"), "w"))
shutil.copy(tok, os.path.join(out, "tokenizer.model"))
