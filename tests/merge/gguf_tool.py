#!/usr/bin/python3
"""Test helper (pure Python): small edits of GGUF files for the LoRA and merge tests.

    gguf_tool.py sub A.gguf B.gguf OUT.gguf [--grow-vocab N]
        OUT = A - B for every F32 tensor (metadata and tensor order from A): delta weights in the
        Vicuna v0 style. --grow-vocab N appends N rows to token_embd/output (the fine-tune's added
        tokens, values 0.25) and raises llama.vocab_size.
    gguf_tool.py nan IN OUT TENSOR     sets the first value of TENSOR (F32 or F16) to NaN
    gguf_tool.py drop IN OUT TENSOR    removes TENSOR
    gguf_tool.py kv IN OUT KEY=VALUE   sets a string key
    gguf_tool.py row IN TENSOR ROW N   prints the first N values of a row (F32/F16) on one line
    gguf_tool.py lora BASE OUT R       a GGUF LoRA adapter of rank R (F32, alpha 2R) for every blk.*
                                       matrix of BASE, deterministic small values
"""
import array
import struct
import sys

ALIGN = 32
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
TYPE_SIZE = {0: (1, 4), 1: (1, 2), 8: (32, 34), 30: (1, 2)}  # F32, F16, Q8_0, BF16: (block, bytes)


def read_str(b, p):
    (n,) = struct.unpack_from("<Q", b, p)
    return b[p + 8:p + 8 + n], p + 8 + n


def skip_val(b, p, t):
    if t == 8:
        return read_str(b, p)[1]
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            p = skip_val(b, p, et)
        return p
    return p + SIZES[t]


def load(path):
    b = open(path, "rb").read()
    _, version, n_t, n_kv = struct.unpack_from("<IIQQ", b, 0)
    p = 24
    kvs = []
    for _ in range(n_kv):
        k, p = read_str(b, p)
        (t,) = struct.unpack_from("<I", b, p)
        q = skip_val(b, p + 4, t)
        kvs.append([k, b[p:q]])  # raw type + value
        p = q
    tensors = []
    for _ in range(n_t):
        name, p = read_str(b, p)
        (nd,) = struct.unpack_from("<I", b, p)
        ne = list(struct.unpack_from("<%dQ" % nd, b, p + 4))
        t, off = struct.unpack_from("<IQ", b, p + 4 + 8 * nd)
        p += 4 + 8 * nd + 12
        tensors.append({"name": name, "ne": ne, "type": t, "off": off})
    data = (p + ALIGN - 1) // ALIGN * ALIGN
    for x in tensors:
        blk, size = TYPE_SIZE[x["type"]]
        n = 1
        for d in x["ne"]:
            n *= d
        x["data"] = bytearray(b[data + x["off"]:data + x["off"] + n // blk * size])
    return kvs, tensors


def save(path, kvs, tensors):
    out = bytearray(struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kvs)))
    for k, raw in kvs:
        out += struct.pack("<Q", len(k)) + k + raw
    off = 0
    for x in tensors:
        out += struct.pack("<Q", len(x["name"])) + x["name"] + struct.pack("<I", len(x["ne"]))
        out += struct.pack("<%dQ" % len(x["ne"]), *x["ne"]) + struct.pack("<IQ", x["type"], off)
        off += (len(x["data"]) + ALIGN - 1) // ALIGN * ALIGN
    out += b"\0" * ((ALIGN - len(out) % ALIGN) % ALIGN)
    for x in tensors:
        out += x["data"] + b"\0" * ((ALIGN - len(x["data"]) % ALIGN) % ALIGN)
    open(path, "wb").write(out)


def floats(x):
    a = array.array("f" if x["type"] == 0 else "H")
    a.frombytes(bytes(x["data"]))
    if x["type"] == 1:
        return [struct.unpack("<e", struct.pack("<H", h))[0] for h in a]
    return a


def find(tensors, name):
    for x in tensors:
        if x["name"] == name.encode():
            return x
    sys.exit("no tensor " + name)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sub":
        kvs, ta = load(args[0])
        _, tb = load(args[1])
        grow = int(args[4]) if len(args) > 4 and args[3] == "--grow-vocab" else 0
        bmap = {x["name"]: x for x in tb}
        for x in ta:
            assert x["type"] == 0, "sub needs F32 tensors"
            a, b = floats(x), floats(bmap[x["name"]])
            d = array.array("f", [u - v for u, v in zip(a, b)])
            if grow and x["name"] in (b"token_embd.weight", b"output.weight"):
                d.extend([0.25] * (x["ne"][0] * grow))
                x["ne"][1] += grow
            x["data"] = bytearray(d.tobytes())
        if grow:
            for kv in kvs:
                if kv[0] == b"llama.vocab_size":
                    (v,) = struct.unpack_from("<I", kv[1], 4)
                    kv[1] = struct.pack("<II", 4, v + grow)
        save(args[2], kvs, ta)
    elif cmd == "nan":
        kvs, ts = load(args[0])
        x = find(ts, args[2])
        x["data"][0:4 if x["type"] == 0 else 2] = struct.pack("<f", float("nan")) if x["type"] == 0 else b"\x00\x7e"
        save(args[1], kvs, ts)
    elif cmd == "drop":
        kvs, ts = load(args[0])
        save(args[1], kvs, [x for x in ts if x["name"] != args[2].encode()])
    elif cmd == "kv":
        kvs, ts = load(args[0])
        k, v = args[2].split("=", 1)
        for kv in kvs:
            if kv[0] == k.encode():
                kv[1] = struct.pack("<IQ", 8, len(v.encode())) + v.encode()
        save(args[1], kvs, ts)
    elif cmd == "row":
        _, ts = load(args[0])
        x = find(ts, args[1])
        row, n = int(args[2]), int(args[3])
        vals = floats(x)[row * x["ne"][0]:row * x["ne"][0] + n]
        print(" ".join(repr(float(v)) for v in vals))
    elif cmd == "lora":
        _, ts = load(args[0])
        r = int(args[2])
        def sv(x):
            return struct.pack("<Q", len(x)) + x
        kvs = [[b"general.architecture", struct.pack("<I", 8) + sv(b"llama")],
               [b"general.type", struct.pack("<I", 8) + sv(b"adapter")],
               [b"adapter.type", struct.pack("<I", 8) + sv(b"lora")],
               [b"adapter.lora.alpha", struct.pack("<If", 6, 2.0 * r)]]
        out, k = [], 0
        for x in ts:
            if not x["name"].startswith(b"blk.") or len(x["ne"]) != 2 or x["ne"][1] == 1:
                continue
            n_in, n_out = x["ne"]
            for suffix, ne in ((b".lora_a", [n_in, r]), (b".lora_b", [r, n_out])):
                vals = array.array("f", [((i * 7 + k * 13) % 17 - 8) / 256.0 for i in range(ne[0] * ne[1])])
                out.append({"name": x["name"] + suffix, "ne": ne, "type": 0, "data": bytearray(vals.tobytes())})
                k += 1
        save(args[1], kvs, out)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
