#!/usr/bin/python3
"""Test oracle: compare two imatrix GGUF files (llama-imatrix's format, FORMATS.md §5.7).
Same metadata, same tensor names in the same order, same shapes, values within REL relative.
Usage: imatrix_compare.py OURS.gguf REFERENCE.gguf REL"""
import struct
import sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def load(path):
    b = open(path, "rb").read()
    _, _, nt, nkv = struct.unpack_from("<4sIQQ", b, 0)
    p = 24

    def rstr(p):
        (n,) = struct.unpack_from("<Q", b, p)
        return b[p + 8:p + 8 + n], p + 8 + n

    def skip(p, t):
        if t == 8:
            return rstr(p)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, p)
            p += 12
            for _ in range(n):
                p = skip(p, et)
            return p
        return p + SIZES[t]

    kv = {}
    for _ in range(nkv):
        k, p = rstr(p)
        (t,) = struct.unpack_from("<I", b, p)
        q = skip(p + 4, t)
        kv[k] = (t, b[p + 4:q])
        p = q
    infos = []
    for _ in range(nt):
        n, p = rstr(p)
        (nd,) = struct.unpack_from("<I", b, p)
        p += 4
        ne = struct.unpack_from("<%dQ" % nd, b, p)
        p += 8 * nd
        t, off = struct.unpack_from("<IQ", b, p)
        p += 12
        infos.append((n, ne, t, off))
    data = (p + 31) // 32 * 32
    tensors = [(n, ne, t, struct.unpack_from("<%df" % ne[0], b, data + off)) for n, ne, t, off in infos]
    return kv, tensors


ours, ref = load(sys.argv[1]), load(sys.argv[2])
rel = float(sys.argv[3])
for key in (b"general.type", b"imatrix.chunk_count", b"imatrix.chunk_size"):
    assert ours[0].get(key) == ref[0].get(key), (key, ours[0].get(key), ref[0].get(key))
assert b"imatrix.datasets" in ours[0]
assert [t[:3] for t in ours[1]] == [t[:3] for t in ref[1]], "tensor names, shapes or types differ"
worst = 0.0
for (name, _, _, a), (_, _, _, b) in zip(ours[1], ref[1]):
    for x, y in zip(a, b):
        d = abs(x - y) / abs(y) if y else abs(x)
        worst = max(worst, d)
        assert d <= rel, (name.decode(), x, y)
print("%d tensors, worst relative difference %.2e" % (len(ours[1]), worst))
