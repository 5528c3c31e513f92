#!/usr/bin/python3
"""Test helper: copy a GGUF file with metadata keys dropped, string keys replaced, or UINT32
or FLOAT32 keys set (replaced where the key is there, added after the others where it is not).

    gguf_edit.py IN OUT [--drop-prefix P]... [--set-string KEY=VALUE]... [--set-u32 KEY=N]...
                 [--set-f32 KEY=X]...

Tensor infos and data are copied unchanged (same order, offsets and alignment)."""
import struct
import sys


def read_str(b, p):
    (n,) = struct.unpack_from("<Q", b, p)
    return b[p + 8:p + 8 + n], p + 8 + n


SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


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


def main():
    src, dst = sys.argv[1], sys.argv[2]
    drops, sets = [], {}
    args = sys.argv[3:]
    while args:
        a = args.pop(0)
        if a == "--drop-prefix":
            drops.append(args.pop(0).encode())
        elif a == "--set-string":
            k, v = args.pop(0).split("=", 1)
            sets[k.encode()] = (8, struct.pack("<Q", len(v.encode())) + v.encode())
        elif a == "--set-u32":
            k, v = args.pop(0).split("=", 1)
            sets[k.encode()] = (4, struct.pack("<I", int(v)))
        elif a == "--set-f32":
            k, v = args.pop(0).split("=", 1)
            sets[k.encode()] = (6, struct.pack("<f", float(v)))
    b = open(src, "rb").read()
    magic, ver, nt, nkv = struct.unpack_from("<4sIQQ", b, 0)
    p = 24
    kvs = []
    align = 32
    for _ in range(nkv):
        k, p = read_str(b, p)
        (t,) = struct.unpack_from("<I", b, p)
        start = p + 4
        end = skip_val(b, start, t)
        raw = b[start:end]
        if k == b"general.alignment":
            (align,) = struct.unpack_from("<I", raw, 0)
        p = end
        if any(k.startswith(d) for d in drops):
            continue
        if k in sets:
            t, raw = sets.pop(k)
        kvs.append((k, t, raw))
    kvs += [(k, t, raw) for k, (t, raw) in sets.items()]
    tstart = p
    for _ in range(nt):
        _, p = read_str(b, p)
        (nd,) = struct.unpack_from("<I", b, p)
        p += 4 + 8 * nd + 4 + 8
    infos = b[tstart:p]
    data_start = (p + align - 1) // align * align
    out = bytearray(struct.pack("<4sIQQ", magic, ver, nt, len(kvs)))
    for k, t, raw in kvs:
        out += struct.pack("<Q", len(k)) + k + struct.pack("<I", t) + raw
    out += infos
    out += b"\0" * ((-len(out)) % align)
    out += b[data_start:]
    open(dst, "wb").write(out)


main()
