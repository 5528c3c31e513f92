#!/usr/bin/python3
"""Test helper (pure Python): a copy of a PEFT adapter folder with edits, for hostile cases.

    peft_edit.py IN_DIR OUT_DIR [--config KEY=JSON]... [--drop KEY]... [--nan KEY]...
                 [--zero-rank MODULE] [--add KEY DTYPE D0,D1]... [--scale-shape KEY D0,D1]

KEY is a full safetensors key; --zero-rank MODULE makes MODULE's lora_A [0, in] and lora_B
[out, 0]; --add appends a zero tensor; --scale-shape replaces a tensor by zeros of another shape."""
import json
import os
import shutil
import struct
import sys

SIZE = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4}


def main():
    src, dst, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    cfg = json.load(open(os.path.join(src, "adapter_config.json")))
    b = open(os.path.join(src, "adapter_model.safetensors"), "rb").read()
    (n,) = struct.unpack_from("<Q", b, 0)
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = {k: (v["dtype"], v["shape"], bytearray(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]))
            for k, v in header.items()}
    while args:
        a = args.pop(0)
        if a == "--config":
            k, v = args.pop(0).split("=", 1)
            cfg[k] = json.loads(v)
        elif a == "--drop":
            del data[args.pop(0)]
        elif a == "--nan":
            k = args.pop(0)
            d = data[k]
            d[2][0:4] = struct.pack("<f", float("nan")) if d[0] == "F32" else b"\x00\x7e"
        elif a == "--zero-rank":
            m = args.pop(0)
            for half, dim in (("lora_A", 0), ("lora_B", 1)):
                k = "base_model.model.%s.%s.weight" % (m, half)
                dt, shape, _ = data[k]
                shape = list(shape)
                shape[dim] = 0
                data[k] = (dt, shape, bytearray())
        elif a in ("--add", "--scale-shape"):
            k = args.pop(0)
            if a == "--add":
                dt = args.pop(0)
            else:
                dt = data[k][0]
            shape = [int(x) for x in args.pop(0).split(",")]
            count = 1
            for x in shape:
                count *= x
            data[k] = (dt, shape, bytearray(count * SIZE[dt]))
        else:
            sys.exit("unknown option " + a)
    json.dump(cfg, open(os.path.join(dst, "adapter_config.json"), "w"), indent=2)
    hdr, off, blobs = {}, 0, []
    if meta is not None:
        hdr["__metadata__"] = meta
    for k in sorted(data):
        dt, shape, raw = data[k]
        hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    text = json.dumps(hdr, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(dst, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for raw in blobs:
            f.write(raw)


if __name__ == "__main__":
    main()
