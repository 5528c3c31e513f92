#!/usr/bin/python3
"""Copies a safetensors file without the named tensors (the others' bytes, order and metadata kept);
an argument NAME=ROWS keeps that tensor with only its first ROWS rows instead:
    st_drop.py IN OUT NAME... [NAME=ROWS...]"""
import json, struct, sys

src, dst = sys.argv[1], sys.argv[2]
drop = {a for a in sys.argv[3:] if "=" not in a}
cut = {a.split("=")[0]: int(a.split("=")[1]) for a in sys.argv[3:] if "=" in a}
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
data = raw[8 + n:]
meta = head.pop("__metadata__", None)
missing = (drop | set(cut)) - set(head)
if missing:
    sys.exit(f"st_drop.py: {src} has no tensor {sorted(missing)[0]}")
out, blobs, off = {}, [], 0
for name, t in head.items():
    if name in drop:
        continue
    b = data[t["data_offsets"][0]:t["data_offsets"][1]]
    shape = t["shape"]
    if name in cut:
        b = b[:len(b) // shape[0] * cut[name]]
        shape = [cut[name]] + shape[1:]
    out[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
if meta is not None:
    out["__metadata__"] = meta
h = json.dumps(out, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
