#!/usr/bin/python3
"""Writes tests/data/hostile/st-<rule>.safetensors: one file per safetensors validation rule
(FORMATS.md §9), each breaking exactly that rule and otherwise well formed. Run from anywhere:
    /usr/bin/python3 tests/data/hostile/st-generate.py
The outputs are committed; tests/formats/test_safetensors.c and test_safetensors_cli.sh check
that every one is refused. MANIFEST-st.txt lists what each breaks."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = []


def case(name, why, data):
    CASES.append((name, why))
    with open(os.path.join(HERE, f"st-{name}.safetensors"), "wb") as f:
        f.write(data)


def raw(header: bytes, data: bytes = b"", pad=True) -> bytes:
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + data


def js(obj) -> bytes:
    return json.dumps(obj).encode()


F32x4 = struct.pack("<4f", 1, 2, 3, 4)
META = {"format": "pt"}


def good(extra=None):
    h = {"__metadata__": META, "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    if extra:
        h.update(extra)
    return h


# rule 1: file >= 8 bytes
case("short-file", "file shorter than the 8-byte length prefix", b"\x10\x00\x00")
# rule 2: N <= 100,000,000
case("header-over-limit", "header length 100,000,001 (limit is 100,000,000)",
     struct.pack("<Q", 100_000_001) + b"{}" + b" " * 6)
# rule 3: 8 + N <= file size
case("header-past-eof", "header length 4096 in a 64-byte file", struct.pack("<Q", 4096) + js(good())[:56])
# rule 4: valid UTF-8, begins with '{'
hdr = js(good()).replace(b'"a"', b'"\xc3\x28"')
case("bad-utf8", "tensor name holds the invalid UTF-8 sequence C3 28", raw(hdr, F32x4))
hdr = js(good()).replace(b'"a"', b'"\xc0\xa1"')
case("overlong-utf8", "tensor name holds an overlong UTF-8 encoding", raw(hdr, F32x4))
case("no-brace", "header begins with a space instead of '{'", raw(b" " + js(good()), F32x4))
case("array-header", "header is a JSON array", raw(b"[" + js(good()) + b"]", F32x4))
# rule 5: schema
case("not-json", "header is cut in the middle of the JSON", raw(js(good())[:-3], F32x4))
case("trailing-json", "a second JSON value after the header object", raw(js(good()) + b' {"b": 1}', F32x4))
case("control-byte", "raw control byte 0x01 in the header", raw(js(good()).replace(b'"pt"', b'"p\x01t"'), F32x4))
case("nul-escape", "tensor name holds \\u0000", raw(js(good()).replace(b'"a"', b'"a\\u0000b"'), F32x4))
h = good(); h["a"]["dtype"] = "F33"
case("unknown-dtype", "dtype F33", raw(js(h), F32x4))
h = good(); h["a"]["dtype"] = 32
case("dtype-not-string", "dtype is a number", raw(js(h), F32x4))
h = good(); h["a"]["shape"] = [-2, -2]
case("negative-dim", "shape [-2, -2]", raw(js(h), F32x4))
case("fraction-dim", "shape [2.5, 2] (not a whole number)",
     raw(js(good()).replace(b"[2, 2]", b"[2.5, 2]"), F32x4))
case("exponent-dim", "shape [2e0, 2] (a float literal)",
     raw(js(good()).replace(b"[2, 2]", b"[2e0, 2]"), F32x4))
case("dim-over-2p53", "shape [9007199254740993, 0]: 2^53+1 would round to 2^53 as a double",
     raw(js(good()).replace(b"[2, 2]", b"[9007199254740993, 0]").replace(b"[0, 16]", b"[0, 0]"), F32x4))
h = good(); h["a"]["shape"] = "2x2"
case("shape-not-array", "shape is a string", raw(js(h), F32x4))
h = good(); h["a"]["shape"] = [[2], 2]
case("nested-shape", "shape holds an array", raw(js(h), F32x4))
h = good(); h["a"]["data_offsets"] = [0, 8, 16]
case("three-offsets", "data_offsets has three numbers", raw(js(h), F32x4))
case("fraction-offset", "data_offsets [0, 16.0]", raw(js(good()).replace(b"[0, 16]", b"[0, 16.0]"), F32x4))
h = good(); del h["a"]["data_offsets"]
case("missing-offsets", "tensor entry without data_offsets", raw(js(h), F32x4))
h = good(); h["a"] = [1, 2]
case("entry-not-object", "tensor entry is an array", raw(js(h), F32x4))
h = good(); h["__metadata__"] = {"format": "pt", "step": 3}
case("metadata-number", "__metadata__ holds a number", raw(js(h), F32x4))
h = good(); h["__metadata__"] = "pt"
case("metadata-not-object", "__metadata__ is a string", raw(js(h), F32x4))
hdr = js(good()).replace(b"}}", b'}, "a": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]}}')
case("duplicate-key", "the tensor name 'a' appears twice", raw(hdr, F32x4))
hdr = js(good()).replace(b'"dtype": "F32",', b'"dtype": "F32", "dtype": "F16",')
case("duplicate-field", "a tensor entry has two dtype fields", raw(hdr, F32x4))
h = good(); h["a"]["shape"] = [1] * 9; h["a"]["data_offsets"] = [0, 4]
case("too-many-dims", "9 dimensions (nomoat supports 8)", raw(js(h), F32x4[:4]))
# rule 6: sorted offsets contiguous from 0
h = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}}
case("gap", "4 unused bytes between two tensors", raw(js(h), F32x4))
h = {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
case("overlap", "two tensors share bytes 8..12", raw(js(h), F32x4))
h = {"a": {"dtype": "F32", "shape": [3], "data_offsets": [4, 16]}}
case("first-not-zero", "the first tensor begins at 4, not 0", raw(js(h), F32x4))
h = {"a": {"dtype": "F32", "shape": [0], "data_offsets": [16, 0]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
case("end-before-begin", "data_offsets [16, 0]", raw(js(h), F32x4))
h = {"a": {"dtype": "F32", "shape": [1 << 38], "data_offsets": [0, 1 << 40]}}
case("offset-past-eof", "data_offsets end 2^40 in a small file", raw(js(h), F32x4))
# rule 7: end - begin == elements x dtype size
h = good(); h["a"]["shape"] = [3, 2]
case("size-mismatch", "shape [3, 2] of F32 needs 24 bytes, data_offsets give 16", raw(js(h), F32x4))
h = good(); h["a"]["dtype"] = "F16"
case("dtype-size-mismatch", "shape [2, 2] of F16 needs 8 bytes, data_offsets give 16", raw(js(h), F32x4))
h = good(); h["a"]["shape"] = [2 ** 40, 2 ** 40, 16]
case("shape-overflow", "element count 2^84 overflows 64 bits", raw(js(h), F32x4))
h = good(); h["a"]["shape"] = [2 ** 31, 2 ** 31]
case("bytes-overflow", "2^62 elements of 32 bits overflow a 64-bit bit count", raw(js(h), F32x4))
h = {"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}, "b": {"dtype": "F32", "shape": [3], "data_offsets": [2, 14]}}
case("subbyte-partial", "3 F4 elements are 12 bits, not a whole number of bytes", raw(js(h), F32x4[:14]))
h = {"a": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 4]}}
case("subbyte-size", "4 F6 elements are 3 bytes, data_offsets give 4", raw(js(h), b"\0\0\0\0"))
# rule 8: no trailing bytes
case("trailing-bytes", "4 bytes after the last tensor", raw(js(good()), F32x4 + b"\0\0\0\0"))
case("missing-bytes", "file is 4 bytes shorter than the tensors need", raw(js(good()), F32x4[:12]))

with open(os.path.join(HERE, "MANIFEST-st.txt"), "w") as f:
    for name, why in CASES:
        f.write(f"st-{name}.safetensors\t{why}\n")
print(f"wrote {len(CASES)} files")
