#!/usr/bin/python3
"""Prints a GGUF file's metadata as JSON: for each key in file order, its type and the SHA-256
of its value's bytes as stored (arrays: element type, count and elements). Small enough to keep
as a reference for a file that is not kept.
   gguf_kv_digest.py FILE.gguf [PREFIX]      (only keys starting with PREFIX)"""
import hashlib, json, struct, sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
NAMES = {0: "UINT8", 1: "INT8", 2: "UINT16", 3: "INT16", 4: "UINT32", 5: "INT32", 6: "FLOAT32", 7: "BOOL",
         8: "STRING", 9: "ARRAY", 10: "UINT64", 11: "INT64", 12: "FLOAT64"}
data = open(sys.argv[1], "rb").read()
prefix = sys.argv[2] if len(sys.argv) > 2 else ""
assert data[:4] == b"GGUF"
n_kv = struct.unpack_from("<Q", data, 16)[0]
pos = 24

def string(p):
    n = struct.unpack_from("<Q", data, p)[0]
    return p + 8 + n

def value(t, p):
    if t == 8:
        return string(p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", data, p)
        p += 12
        for _ in range(n):
            p = value(et, p)
        return p
    return p + SIZES[t]

out = {}
for _ in range(n_kv):
    end = string(pos)
    key = data[pos + 8:end].decode("utf-8")
    t = struct.unpack_from("<I", data, end)[0]
    start = end + 4
    pos = value(t, start)
    if key.startswith(prefix):
        name = NAMES[t] if t != 9 else "ARRAY[%s]" % NAMES[struct.unpack_from("<I", data, start)[0]]
        out[key] = [name, hashlib.sha256(data[start:pos]).hexdigest()]
print(json.dumps(out, indent=1))
