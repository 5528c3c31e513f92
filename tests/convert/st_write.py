"""Writes a safetensors file for the test-model makers in this folder (standard library only):
tensors in the order given, header JSON without spaces, padded to 8 bytes as safetensors does.
    st_write.write(path, [(name, dtype, shape, raw_bytes), ...], metadata=None)"""
import json, struct


def write(path, tensors, metadata=None):
    header, off = ({"__metadata__": metadata} if metadata is not None else {}), 0
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(blob)]}
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, _, _, blob in tensors:
            f.write(blob)
