#!/usr/bin/python3
"""Oracle for test_convert_layouts.sh: reads a GGUF and the safetensors it came from with
numpy and checks names, shapes, metadata and data, undoing HF's rotate-half layout with the
reshape/swapaxes definition used by llama.cpp's converter (FORMATS.md §6.3).
    check_tiny.py MODEL_DIR OUT.gguf"""
import json, struct, sys
import numpy as np

model, path = sys.argv[1:3]
cfg = json.load(open(f"{model}/config.json"))
b = open(path, "rb").read()
o = 0
def u(fmt):
    global o
    v = struct.unpack_from("<" + fmt, b, o)[0]; o += struct.calcsize("<" + fmt); return v
def s():
    global o
    n = u("Q"); v = b[o:o + n].decode(); o += n; return v
SC = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
assert b[:4] == b"GGUF" and (u("I"), u("I")) and True
o = 8
nt, nkv = u("Q"), u("Q")
kv = {}
for _ in range(nkv):
    k = s(); t = u("I")
    if t == 8: kv[k] = s()
    elif t == 9:
        et, n = u("I"), u("Q")
        kv[k] = [s() for _ in range(n)] if et == 8 else [u(SC[et]) for _ in range(n)]
    else: kv[k] = u(SC[t])
infos = []
for _ in range(nt):
    name = s(); nd = u("I"); ne = [u("Q") for _ in range(nd)]; ty = u("I"); off = u("Q"); infos.append((name, ne, ty, off))
data0 = (o + 31) // 32 * 32

sb = open(f"{model}/model.safetensors", "rb").read()
hn = struct.unpack("<Q", sb[:8])[0]
hdr = json.loads(sb[8:8 + hn])
def src(name):
    t = hdr[name]; a, e = t["data_offsets"]
    return np.frombuffer(sb[8 + hn + a:8 + hn + e], dtype=np.float32 if t["dtype"] == "F32" else np.float16).reshape(t["shape"])

heads, kvh = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
def permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
layer = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
         "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
errors = []
expected = {n for n in hdr if n != "__metadata__"}
seen = set()
for name, ne, ty, off in infos:
    base = name[:-len(".weight")]
    if base.startswith("blk."):
        _, l, part = base.split(".")
        hf = f"model.layers.{l}.{layer[part]}.weight"
    else:
        hf = names[base] + ".weight"
    seen.add(hf)
    w = src(hf).astype(np.float32)
    if hf.endswith("q_proj.weight"): w = permute(w, heads, heads)
    if hf.endswith("k_proj.weight"): w = permute(w, heads, kvh)
    if ne != list(reversed(w.shape)): errors.append(f"{name}: ne {ne} vs {w.shape}")
    n = w.size
    raw = b[data0 + off:data0 + off + n * (4 if ty == 0 else 2)]
    got = np.frombuffer(raw, dtype=np.float32 if ty == 0 else np.float16).astype(np.float32).reshape(w.shape)
    want = w if ty == 0 else w.astype(np.float16).astype(np.float32)
    if ty not in (0, 1): errors.append(f"{name}: type {ty}")
    elif not np.array_equal(got, want): errors.append(f"{name}: data differs")
    if (len(w.shape) == 1) != (ty == 0): errors.append(f"{name}: type {ty} for {len(w.shape)}-D")
if seen != expected: errors.append(f"tensors {sorted(expected - seen)} not written")
if cfg.get("tie_word_embeddings") and any(i[0] == "output.weight" for i in infos): errors.append("output.weight written for tied model")
if ("llama.attention.head_count_kv" in kv) != ("num_key_value_heads" in cfg): errors.append("head_count_kv presence")
if kv.get("llama.attention.head_count_kv", kvh) != kvh: errors.append("head_count_kv value")
for k, want in [("general.architecture", "llama"), ("llama.attention.head_count", heads), ("llama.embedding_length", cfg["hidden_size"]),
                ("llama.rope.dimension_count", cfg["hidden_size"] // heads), ("llama.vocab_size", cfg["vocab_size"]),
                ("llama.context_length", cfg["max_position_embeddings"])]:
    if kv.get(k) != want: errors.append(f"{k} = {kv.get(k)!r}, want {want!r}")
if abs(kv["llama.rope.freq_base"] - cfg["rope_theta"]) > 0: errors.append("rope theta")
if len(kv["tokenizer.ggml.tokens"]) != cfg["vocab_size"]: errors.append("vocab length")
print("\n".join(errors) if errors else f"ok: {len(infos)} tensors")
sys.exit(1 if errors else 0)
