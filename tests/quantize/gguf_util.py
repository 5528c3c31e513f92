#!/usr/bin/python3
"""Test helper for nomoat-quantize (fixture generation and oracles; run with /usr/bin/python3).

  model OUT DTYPE [SEED]      small Llama-shaped GGUF (f32/f16/bf16); the f32 values of every
                              dtype are the same numbers (representable in f16 and in bf16)
  bad OUT KIND                F32 GGUF whose blk.0.attn_q.weight row 5 holds nan | inf | huge
  big OUT MIB                 F32 GGUF of about MIB MiB of random weights (interrupt tests)
  tensors-equal A B           same tensor names, types, shapes and data bytes (exit 1 otherwise)
  kv FILE KEY                 prints a metadata value
  types FILE                  prints "name type" per tensor
  dat-from-gguf IN OUT        converts a GGUF imatrix to the legacy .dat format
  imatrix-bad IN OUT          a GGUF imatrix whose first entry has too few values
"""
import struct
import sys

try:  # only the generators need numpy; the readers start faster without it
    if sys.argv[1] in ("model", "bad", "big", "dat-from-gguf", "experts"):
        import numpy as np
except IndexError:
    pass

GGML = {"F32": 0, "F16": 1, "BF16": 30}
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
BLOCK = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
         10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2),
         20: (32, 18), 23: (256, 136), 34: (256, 54), 35: (256, 66)}


def read(path):
    b = open(path, "rb").read()
    pos = [4]

    def u(fmt):
        v = struct.unpack_from("<" + fmt, b, pos[0])
        pos[0] += struct.calcsize("<" + fmt)
        return v[0]

    def s():
        n = u("Q")
        v = b[pos[0]:pos[0] + n]
        pos[0] += n
        return v.decode("utf-8", "replace")

    def val(t):
        if t == 8:
            return s()
        if t == 9:
            et, n = u("I"), u("Q")
            return [val(et) for _ in range(n)]
        return u(SCALAR[t])

    assert b[:4] == b"GGUF"
    u("I")
    nt, nkv = u("Q"), u("Q")
    kvs = []
    for _ in range(nkv):
        k = s()
        t = u("I")
        kvs.append((k, t, val(t)))
    align = next((v for k, t, v in kvs if k == "general.alignment"), 32)
    infos = []
    for _ in range(nt):
        name = s()
        nd = u("I")
        ne = [u("Q") for _ in range(nd)]
        t = u("I")
        off = u("Q")
        infos.append((name, ne, t, off))
    data = (pos[0] + align - 1) // align * align
    tensors = []
    for name, ne, t, off in infos:
        bs, ts = BLOCK[t]
        n = 1
        for x in ne:
            n *= x
        size = n // bs * ts
        tensors.append((name, ne, t, b[data + off:data + off + size]))
    return kvs, tensors


def write(path, kvs, tensors):
    """kvs: [(key, type, value)] scalar/string only; tensors: [(name, ne, ggml_type, bytes)]"""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))

    def s(x):
        e = x.encode()
        out.extend(struct.pack("<Q", len(e)) + e)

    for k, t, v in kvs:
        s(k)
        out.extend(struct.pack("<I", t))
        if t == 8:
            s(v)
        elif t == 9:
            et, items = v
            out.extend(struct.pack("<IQ", et, len(items)))
            for it in items:
                if et == 8:
                    s(it)
                else:
                    out.extend(struct.pack("<" + SCALAR[et], it))
        else:
            out.extend(struct.pack("<" + SCALAR[t], v))
    off = 0
    for name, ne, t, data in tensors:
        s(name)
        out.extend(struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne))
        out.extend(struct.pack("<IQ", t, off))
        off += (len(data) + 31) // 32 * 32
    out.extend(b"\0" * ((-len(out)) % 32))
    for name, ne, t, data in tensors:
        out.extend(data)
        out.extend(b"\0" * ((-len(data)) % 32))
    open(path, "wb").write(bytes(out))


def encode(a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "f32":
        return a.tobytes()
    if dtype == "f16":
        return a.astype(np.float16).tobytes()
    return (a.view(np.uint32) >> 16).astype(np.uint16).tobytes()


def llama_kvs(layers):
    return [("general.architecture", 8, "llama"), ("general.name", 8, "qtool-test"),
            ("llama.block_count", 4, layers), ("llama.embedding_length", 4, 256),
            ("llama.attention.head_count", 4, 4), ("llama.attention.head_count_kv", 4, 2),
            ("general.file_type", 4, 0)]


def cmd_model(out, dtype, seed="1"):
    rng = np.random.default_rng(int(seed))
    layers = 2
    shapes = [("token_embd.weight", [256, 64]), ("output_norm.weight", [256]), ("output.weight", [256, 64])]
    for i in range(layers):
        shapes += [(f"blk.{i}.attn_q.weight", [256, 256]), (f"blk.{i}.attn_k.weight", [256, 128]),
                   (f"blk.{i}.attn_v.weight", [256, 128]), (f"blk.{i}.attn_output.weight", [256, 256]),
                   (f"blk.{i}.ffn_gate.weight", [256, 512]), (f"blk.{i}.ffn_up.weight", [256, 512]),
                   (f"blk.{i}.ffn_down.weight", [512, 256]), (f"blk.{i}.attn_norm.weight", [256]),
                   (f"blk.{i}.ffn_norm.weight", [256])]
    tensors = []
    for name, ne in shapes:
        n = int(np.prod(ne))
        a = (rng.standard_normal(n) * 0.05).astype(np.float32)
        # values representable exactly in f16 and bf16: 8 significant bits, small exponent range
        a = a.astype(np.float16).astype(np.float32)
        a = (a.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
        t = {"f32": 0, "f16": 1, "bf16": 30}[dtype] if len(ne) > 1 else 0
        tensors.append((name, ne, t, encode(a, {0: "f32", 1: "f16", 30: "bf16"}[t])))
    kvs = llama_kvs(layers)
    kvs[-1] = ("general.file_type", 4, {"f32": 0, "f16": 1, "bf16": 32}[dtype])
    write(out, kvs, tensors)


def cmd_bad(out, kind):
    rng = np.random.default_rng(7)
    a = (rng.standard_normal((8, 256)) * 0.1).astype(np.float32)
    a[5, 17] = {"nan": np.nan, "inf": np.inf, "huge": 1e10}[kind]
    good = (rng.standard_normal((4, 256)) * 0.1).astype(np.float32)
    write(out, llama_kvs(1), [("blk.0.attn_k.weight", [256, 4], 0, good.tobytes()),
                              ("blk.0.attn_q.weight", [256, 8], 0, a.tobytes())])


def cmd_big(out, mib):
    rows = int(mib) * 1024 * 1024 // (4 * 4096)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((rows, 4096), dtype=np.float32)
    write(out, llama_kvs(1), [("blk.0.ffn_up.weight", [4096, rows], 0, a.tobytes())])


def cmd_tensors_equal(a, b):
    _, ta = read(a)
    _, tb = read(b)
    bad = 0
    if [x[0] for x in ta] != [x[0] for x in tb]:
        print("tensor names or order differ")
        return 1
    for (n, ne, t, d), (_, ne2, t2, d2) in zip(ta, tb):
        if ne != ne2 or t != t2 or d != d2:
            print(f"{n}: shape {ne}/{ne2} type {t}/{t2} data {'same' if d == d2 else 'differs'}")
            bad += 1
    print(f"{len(ta)} tensors, {bad} differ")
    return 1 if bad else 0


def cmd_kv(path, key):
    kvs, _ = read(path)
    for k, t, v in kvs:
        if k == key:
            print(v)
            return 0
    return 1


def cmd_types(path):
    _, ts = read(path)
    for n, ne, t, d in ts:
        print(n, t)
    return 0


def cmd_dat_from_gguf(src, out):
    kvs, ts = read(src)
    by = {n: (ne, d) for n, ne, t, d in ts}
    names = sorted(n[:-len(".in_sum2")] for n in by if n.endswith(".in_sum2"))
    buf = bytearray(struct.pack("<i", len(names)))
    for name in names:
        sums = np.frombuffer(by[name + ".in_sum2"][1], dtype=np.float32)
        count = np.frombuffer(by[name + ".counts"][1], dtype=np.float32)[0]
        # legacy stores mean * ncall and readers divide by ncall: ncall = 1 keeps the means exact
        ncall = 1
        vals = (sums / np.float32(count)).astype(np.float32)
        e = name.encode()
        buf += struct.pack("<i", len(e)) + e + struct.pack("<ii", ncall, len(vals)) + vals.astype("<f4").tobytes()
    ds = next(v for k, t, v in kvs if k == "imatrix.datasets")[0].encode()
    chunks = next(v for k, t, v in kvs if k == "imatrix.chunk_count")
    buf += struct.pack("<ii", chunks, len(ds)) + ds
    open(out, "wb").write(bytes(buf))
    return 0


def cmd_imatrix_bad(src, out):
    kvs, ts = read(src)
    fixed = []
    for n, ne, t, d in ts:
        if n == ts[0][0]:
            ne, d = [ne[0] - 32] + ne[1:], d[:len(d) - 32 * 4]
        fixed.append((n, ne, t, d))
    write(out, [(k, t, (8, v) if t == 9 else v) for k, t, v in kvs], fixed)
    return 0


def cmd_imatrix_hostile(model, outdir):
    """Crafted importance matrices for model's 2-D tensors: good-zero-counts.gguf (accepted:
    count 0 means weights 1.0) and bad-*.{gguf,dat} (each must be refused)."""
    import os
    _, ts = read(model)
    names = [(n, ne) for n, ne, t, d in ts if len(ne) > 1]
    kv = [("general.type", 8, "imatrix"), ("imatrix.datasets", 9, (8, ["x.txt"])),
          ("imatrix.chunk_count", 4, 1), ("imatrix.chunk_size", 4, 256)]

    def gg(path, sums=lambda n, k: struct.pack("<%df" % n, *([1.0] * n)), counts=b"\0\0\0\0",
           ctype=0, skip_counts=False):
        tensors = []
        for n, ne in names:
            tensors.append((n + ".in_sum2", [ne[0], 1], 0, sums(ne[0], n)))
            if not skip_counts:
                tensors.append((n + ".counts", [1, 1], ctype, counts if ctype == 0 else counts[:2]))
        write(os.path.join(outdir, path), kv, tensors)

    gg("good-zero-counts.gguf")
    gg("bad-nan-sum.gguf", counts=struct.pack("<f", 2.0),
       sums=lambda n, k: struct.pack("<%df" % n, *([float("nan")] + [1.0] * (n - 1))))
    gg("bad-negative-count.gguf", counts=struct.pack("<f", -1.0))
    gg("bad-no-counts.gguf", skip_counts=True)
    gg("bad-f16-counts.gguf", ctype=1)

    def dat(path, body):
        open(os.path.join(outdir, path), "wb").write(body)

    e = names[0][0].encode()
    vals = struct.pack("<4f", 1, 2, 3, 4)
    dat("bad-truncated.dat", struct.pack("<ii", 1, len(e)) + e + struct.pack("<ii", 1, 4) + vals[:10])
    dat("bad-huge-count.dat", struct.pack("<ii", 1, len(e)) + e + struct.pack("<ii", 1, 0x7FFFFFFF) + vals)
    dat("bad-negative-name.dat", struct.pack("<ii", 1, -5) + e)
    dat("bad-negative-ncall.dat", struct.pack("<ii", 1, len(e)) + e + struct.pack("<ii", -3, 4) + vals)
    dat("bad-nan.dat", struct.pack("<ii", 1, len(e)) + e + struct.pack("<ii", 1, 4) + struct.pack("<4f", 1, float("nan"), 3, 4))
    dat("bad-zero-entries.dat", struct.pack("<i", 0))
    dat("bad-trailer.dat", struct.pack("<ii", 1, len(e)) + e + struct.pack("<ii", 1, 4) + vals + struct.pack("<ii", 5, 1000) + b"abc")
    dat("bad-empty.dat", b"")
    return 0


def cmd_experts(outdir):
    """A 3-D expert tensor (4 experts) and the same 4 matrices as 2-D tensors, with importance
    matrices giving each expert its own weights (expert 2 with count 0, i.e. weights 1.0)."""
    import os
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((4, 64, 256)) * 0.05).astype(np.float32)
    sums = (rng.random((4, 256)) * 3).astype(np.float32)
    counts = np.array([3, 7, 0, 1], dtype=np.float32)
    kv = [("general.architecture", 8, "llama"), ("llama.block_count", 4, 1)]
    write(os.path.join(outdir, "experts.gguf"), kv, [("blk.0.ffn_up_exps.weight", [256, 64, 4], 0, a.tobytes())])
    write(os.path.join(outdir, "split.gguf"), kv,
          [(f"blk.0.e{k}.weight", [256, 64], 0, a[k].tobytes()) for k in range(4)])
    ikv = [("general.type", 8, "imatrix"), ("imatrix.chunk_count", 4, 1)]
    write(os.path.join(outdir, "experts-imatrix.gguf"), ikv,
          [("blk.0.ffn_up_exps.weight.in_sum2", [256, 4], 0, sums.tobytes()),
           ("blk.0.ffn_up_exps.weight.counts", [1, 4], 0, counts.tobytes())])
    t = []
    for k in range(4):
        t += [(f"blk.0.e{k}.weight.in_sum2", [256, 1], 0, sums[k].tobytes()),
              (f"blk.0.e{k}.weight.counts", [1, 1], 0, counts[k:k + 1].tobytes())]
    write(os.path.join(outdir, "split-imatrix.gguf"), ikv, t)
    return 0


def cmd_concat_equal(a, b):
    """the one tensor of A equals the concatenation of B's tensors (in B's order)"""
    _, ta = read(a)
    _, tb = read(b)
    same = ta[0][3] == b"".join(x[3] for x in tb) and ta[0][2] == tb[0][2]
    print("same" if same else "differ")
    return 0 if same else 1


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    rc = {"model": cmd_model, "bad": cmd_bad, "big": cmd_big, "tensors-equal": cmd_tensors_equal,
          "kv": cmd_kv, "types": cmd_types, "dat-from-gguf": cmd_dat_from_gguf,
          "imatrix-bad": cmd_imatrix_bad, "imatrix-hostile": cmd_imatrix_hostile,
          "experts": cmd_experts, "concat-equal": cmd_concat_equal}[cmd](*args)
    sys.exit(rc or 0)
