#!/usr/bin/python3
"""Writes the seeds of tests/fuzz/fuzz_model.c: one tiny GGUF v3 model per family nomoat-verify
runs (the keys and tensors llama.cpp's converter writes for it, at toy sizes, random weights), so
the fuzzer starts from files the loader accepts and the forward pass evaluates.
    make_model_seeds.py OUT_DIR"""
import os
import random
import struct
import sys

F32, F16, Q8_0 = 0, 1, 8
U32, FLOAT32, BOOL, STRING = 4, 6, 7, 8


def gguf(path, kv, tensors):
    """kv: [(key, type, value)]; tensors: [(name, ne, type, floats)]"""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)))
    for key, t, v in kv:
        out += s(key) + struct.pack("<I", t)
        out += {U32: lambda: struct.pack("<I", v), FLOAT32: lambda: struct.pack("<f", v),
                BOOL: lambda: struct.pack("<B", v), STRING: lambda: s(v)}[t]()
    blobs, off = [], 0
    for name, ne, t, vals in tensors:
        if t == F32:
            blob = struct.pack("<%df" % len(vals), *vals)
        elif t == F16:
            blob = struct.pack("<%de" % len(vals), *vals)
        else:  # Q8_0: blocks of 32 as an f16 scale and 32 int8
            blob = b""
            for i in range(0, len(vals), 32):
                blk = vals[i:i + 32]
                d = max(abs(x) for x in blk) / 127 or 1.0
                blob += struct.pack("<e32b", d, *[max(-127, min(127, round(x / d))) for x in blk])
        out += s(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        out += struct.pack("<IQ", t, off)
        blobs.append(blob)
        off += (len(blob) + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    for blob in blobs:
        out += blob + b"\0" * (-len(blob) % 32)
    with open(path, "wb") as f:
        f.write(out)


def model(path, arch, E, H, Hkv, hd, F, V, ctx, layers=1, wtype=F32, rot=None, extra_kv=(), norm="rms",
          qkv_fused=False, bias=False, qk_norm=False, pos_embd=False, tied=False, qkv_bias=False,
          gated_up=False, post_norms=False, experts=0, ff_exp=None):
    rnd = random.Random(arch + str(E))
    w = lambda n: [rnd.uniform(-0.5, 0.5) for _ in range(n)]
    ones = lambda n: [1.0 + rnd.uniform(-0.1, 0.1) for _ in range(n)]
    kv = [("general.architecture", STRING, arch), (arch + ".context_length", U32, ctx),
          (arch + ".embedding_length", U32, E), (arch + ".block_count", U32, layers),
          (arch + ".feed_forward_length", U32, F), (arch + ".attention.head_count", U32, H),
          (arch + ".attention.head_count_kv", U32, Hkv), (arch + ".rope.freq_base", FLOAT32, 10000.0)]
    if norm == "rms":
        kv.append((arch + ".attention.layer_norm_rms_epsilon", FLOAT32, 1e-6))
    else:
        kv.append((arch + ".attention.layer_norm_epsilon", FLOAT32, 1e-5))
    if hd * H != E:
        kv += [(arch + ".attention.key_length", U32, hd), (arch + ".attention.value_length", U32, hd)]
    if rot is not None:
        kv.append((arch + ".rope.dimension_count", U32, rot))
    kv += list(extra_kv)
    t = [("token_embd.weight", [E, V], wtype, w(E * V))]
    if pos_embd:
        t.append(("position_embd.weight", [E, ctx], F32, w(E * ctx)))
    t.append(("output_norm.weight", [E], F32, ones(E)))
    if norm == "layer":
        t.append(("output_norm.bias", [E], F32, w(E)))
    if not tied:
        t.append(("output.weight", [E, V], wtype, w(E * V)))
    q, k = H * hd, Hkv * hd
    for i in range(layers):
        b = "blk.%d." % i

        def mat(name, n_in, n_out, with_bias=bias):
            t.append((b + name + ".weight", [n_in, n_out], wtype, w(n_in * n_out)))
            if with_bias:
                t.append((b + name + ".bias", [n_out], F32, w(n_out)))

        def vec(name):
            t.append((b + name + ".weight", [E], F32, ones(E)))
            if norm == "layer":
                t.append((b + name + ".bias", [E], F32, w(E)))

        vec("attn_norm")
        if qkv_fused:
            mat("attn_qkv", E, q + 2 * k)
        else:
            mat("attn_q", E, q, bias or qkv_bias), mat("attn_k", E, k, bias or qkv_bias), mat("attn_v", E, k, bias or qkv_bias)
        if qk_norm:
            t.append((b + "attn_q_norm.weight", [hd], F32, ones(hd)))
            t.append((b + "attn_k_norm.weight", [hd], F32, ones(hd)))
        mat("attn_output", q, E)
        if post_norms:
            vec("post_attention_norm")
        vec("ffn_norm")
        if experts:  # the router (F32, as the converter keeps it) and each FFN matrix stacked per expert
            fe = ff_exp or F
            t.append((b + "ffn_gate_inp.weight", [E, experts], F32, w(E * experts)))
            t.append((b + "ffn_gate_exps.weight", [E, fe, experts], wtype, w(E * fe * experts)))
            t.append((b + "ffn_down_exps.weight", [fe, E, experts], wtype, w(E * fe * experts)))
            t.append((b + "ffn_up_exps.weight", [E, fe, experts], wtype, w(E * fe * experts)))
        elif gated_up:  # one matrix: the gate's rows, then the up rows (Phi-3's gate_up_proj)
            mat("ffn_up", E, 2 * F, False), mat("ffn_down", F, E, False)
        elif norm == "rms":
            mat("ffn_gate", E, F, False), mat("ffn_up", E, F, False), mat("ffn_down", F, E, False)
        else:
            mat("ffn_up", E, F), mat("ffn_down", F, E)
        if post_norms:
            vec("post_ffw_norm")
    gguf(path, kv, t)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model(os.path.join(out, "llama-f32.gguf"), "llama", E=8, H=2, Hkv=1, hd=4, F=16, V=12, ctx=16, layers=2)
    model(os.path.join(out, "llama-q8_0.gguf"), "llama", E=32, H=4, Hkv=2, hd=8, F=32, V=10, ctx=16,
          wtype=Q8_0)
    model(os.path.join(out, "qwen3-f16.gguf"), "qwen3", E=8, H=4, Hkv=2, hd=4, F=16, V=12, ctx=16,
          wtype=F16, qk_norm=True, tied=True)
    model(os.path.join(out, "gptneox-f16.gguf"), "gptneox", E=8, H=2, Hkv=2, hd=4, F=32, V=12, ctx=16,
          wtype=F16, rot=2, norm="layer", qkv_fused=True, bias=True,
          extra_kv=[("gptneox.use_parallel_residual", BOOL, 1)])
    model(os.path.join(out, "gpt2-f32.gguf"), "gpt2", E=8, H=2, Hkv=2, hd=4, F=32, V=12, ctx=8,
          norm="layer", qkv_fused=True, bias=True, pos_embd=True, tied=True)
    model(os.path.join(out, "qwen2-f16.gguf"), "qwen2", E=8, H=2, Hkv=1, hd=4, F=16, V=12, ctx=16,
          wtype=F16, qkv_bias=True, tied=True)
    model(os.path.join(out, "phi3-f32.gguf"), "phi3", E=8, H=2, Hkv=1, hd=4, F=16, V=12, ctx=16,
          qkv_fused=True, gated_up=True, rot=4,
          extra_kv=[("phi3.rope.scaling.original_context_length", U32, 16), ("phi3.attention.sliding_window", U32, 16)])
    model(os.path.join(out, "gemma2-f32.gguf"), "gemma2", E=8, H=2, Hkv=1, hd=4, F=16, V=12, ctx=16,
          post_norms=True, tied=True,
          extra_kv=[("gemma2.attn_logit_softcapping", FLOAT32, 50.0), ("gemma2.final_logit_softcapping", FLOAT32, 30.0),
                    ("gemma2.attention.sliding_window", U32, 16)])
    model(os.path.join(out, "mixtral-q8_0.gguf"), "llama", E=32, H=4, Hkv=2, hd=8, F=32, V=10, ctx=16,
          wtype=Q8_0, experts=4, extra_kv=[("llama.expert_count", U32, 4), ("llama.expert_used_count", U32, 2)])
    model(os.path.join(out, "qwen3moe-f16.gguf"), "qwen3moe", E=8, H=4, Hkv=2, hd=4, F=16, V=12, ctx=16,
          wtype=F16, qk_norm=True, experts=4, ff_exp=8,
          extra_kv=[("qwen3moe.expert_count", U32, 4), ("qwen3moe.expert_used_count", U32, 2),
                    ("qwen3moe.expert_feed_forward_length", U32, 8)])


if __name__ == "__main__":
    main()
