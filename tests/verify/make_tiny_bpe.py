#!/usr/bin/python3
"""Writes a Hugging Face Llama folder with tiny zero weights around a tokenizer.json (and the
tokenizer_config.json beside it), so that nomoat-convert can turn any BPE vocabulary into a GGUF
llama.cpp loads.
   make_tiny_bpe.py TOKENIZER_DIR OUT_DIR VOCAB_SIZE BOS_ID EOS_ID"""
import json, os, shutil, struct, sys

src, out, vocab, bos, eos = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
H, F = 32, 64
os.makedirs(out, exist_ok=True)
for name in ("tokenizer.json", "tokenizer_config.json"):
    if os.path.exists(os.path.join(src, name)):
        shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
           "intermediate_size": F, "num_hidden_layers": 1, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": vocab, "max_position_embeddings": 64,
           "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
           "bos_token_id": bos, "eos_token_id": eos, "torch_dtype": "float32"},
          open(os.path.join(out, "config.json"), "w"))
shapes = {"model.embed_tokens.weight": [vocab, H], "lm_head.weight": [vocab, H], "model.norm.weight": [H]}
p = "model.layers.0."
shapes.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
               p + "self_attn.q_proj.weight": [H, H], p + "self_attn.k_proj.weight": [H // 2, H],
               p + "self_attn.v_proj.weight": [H // 2, H], p + "self_attn.o_proj.weight": [H, H],
               p + "mlp.gate_proj.weight": [F, H], p + "mlp.up_proj.weight": [F, H],
               p + "mlp.down_proj.weight": [H, F]})
header, off = {}, 0
for name, shape in shapes.items():
    n = 4
    for d in shape:
        n *= d
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
    off += n
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    f.truncate(8 + len(h) + off)  # zeros
