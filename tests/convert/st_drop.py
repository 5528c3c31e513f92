#!/usr/bin/python3
"""Copies a safetensors file without the named tensors (the others' bytes, order and metadata kept):
    st_drop.py IN OUT NAME..."""
import json, struct, sys

src, dst, drop = sys.argv[1], sys.argv[2], set(sys.argv[3:])
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
data = raw[8 + n:]
meta = head.pop("__metadata__", None)
missing = drop - set(head)
if missing:
    sys.exit(f"st_drop.py: {src} has no tensor {sorted(missing)[0]}")
out, blobs, off = {}, [], 0
for name, t in head.items():
    if name in drop:
        continue
    b = data[t["data_offsets"][0]:t["data_offsets"][1]]
    out[name] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
if meta is not None:
    out["__metadata__"] = meta
h = json.dumps(out, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
