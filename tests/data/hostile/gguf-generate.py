#!/usr/bin/python3
"""Writes tests/data/hostile/gguf-<rule>.gguf: one file per GGUF validation rule (FORMATS.md
§1.6), each breaking exactly that rule and otherwise well formed, and the fuzzer's seed corpus
tests/fuzz/seeds/gguf/ (small valid files covering every value type). Run from anywhere:
    /usr/bin/python3 tests/data/hostile/gguf-generate.py
The outputs are committed. MANIFEST-gguf.txt lists, tab-separated, each file, a phrase the
refusal must contain (so a file refused for some other reason fails the test) and what it breaks.
tests/inspect/test_inspect_hostile.sh and tests/formats/test_gguf_hostile.c check them."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "..", "..", "fuzz", "seeds", "gguf")

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
          U64: "<Q", I64: "<q", F64: "<d"}
F32_T, Q8_0_T = 0, 8


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        for it in items:
            out += value(et, it)
        return out
    return struct.pack(SCALAR[t], v)


def kv(key, t, v):
    return gstr(key) + struct.pack("<I", t) + value(t, v)


def tinfo(name, ne, ttype, offset):
    return gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", n) for n in ne) + \
        struct.pack("<IQ", ttype, offset)


def gguf(kvs=None, tensors=None, version=3, alignment=32, magic=b"GGUF", n_tensors=None, n_kv=None,
         offsets=None, raw_kvs=None, raw_tensors=None, truncate=None):
    """kvs: list of (key, type, value); tensors: list of (name, ne, type, bytes)."""
    kvs = [("general.architecture", STR, "llama")] if kvs is None else kvs
    tensors = [("w", [4, 2], F32_T, struct.pack("<8f", *range(8)))] if tensors is None else tensors
    body = raw_kvs if raw_kvs is not None else b"".join(kv(*k) for k in kvs)
    off, infos, data = 0, b"", b""
    for i, (name, ne, ttype, payload) in enumerate(tensors):
        o = offsets[i] if offsets is not None else off
        infos += tinfo(name, ne, ttype, o)
        data += payload + b"\0" * (-len(payload) % alignment)
        off += len(payload) + (-len(payload) % alignment)
    if raw_tensors is not None:
        infos = raw_tensors
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                               (len(kvs) if raw_kvs is None else 1) if n_kv is None else n_kv)
    out = head + body + infos
    out += b"\0" * (-len(out) % alignment)
    out += data
    return out[:truncate] if truncate is not None else out


CASES = []


def case(name, expect, why, data):
    CASES.append((f"gguf-{name}.gguf", expect, why))
    with open(os.path.join(HERE, f"gguf-{name}.gguf"), "wb") as f:
        f.write(data)


def main():
    for old in os.listdir(HERE):
        if old.startswith("gguf-") and old.endswith(".gguf"):
            os.remove(os.path.join(HERE, old))
    ok = gguf()
    q8 = ("q", [32, 1], Q8_0_T, bytes(34))
    # 1. magic
    case("magic", "not a GGUF file", "magic GGUG", b"GGUG" + ok[4:])
    case("empty", "not a GGUF file", "zero-length file", b"")
    # 2. version
    case("version-0", "version 0", "version 0", gguf(version=0))
    case("version-1", "version 1", "version 1 (32-bit counts)", gguf(version=1))
    case("version-4", "version 4", "version 4", gguf(version=4))
    case("version-big-endian", "other byte order", "version 3 stored big-endian", gguf(version=0x03000000))
    # 3. every read bounded by the file
    case("truncated-header", "truncated", "file ends inside the tensor counts", ok[:12])
    case("truncated-kv", "truncated", "file ends inside a metadata value", gguf(truncate=24 + 8 + 20 + 4 + 6))
    case("truncated-tensor-info", "truncated", "file ends inside a tensor-info record",
         ok[:len(gguf(tensors=[])) - (-len(gguf(tensors=[])) % 32) + 10])
    case("truncated-data", "truncated", "tensor data extends past the end of the file", ok[:-16 - 8])
    # 4. strings
    case("string-over-1gib", "more than 1 GiB", "string value length 2^30 + 1",
         gguf(raw_kvs=gstr("general.name") + struct.pack("<IQ", STR, (1 << 30) + 1) + b"x" * 16))
    case("string-past-eof", "truncated", "string value length larger than the bytes left",
         gguf(raw_kvs=gstr("general.name") + struct.pack("<IQ", STR, 100000) + b"x" * 16))
    case("key-past-eof", "truncated", "key length larger than the bytes left",
         gguf(raw_kvs=struct.pack("<Q", 1 << 29) + b"general.name"))
    # 5. arrays
    case("array-count-over-2p30", "more than 2^30", "array count 2^30 + 1",
         gguf(raw_kvs=gstr("a") + struct.pack("<IIQ", ARR, U8, (1 << 30) + 1)))
    case("array-past-eof", "cannot fit", "INT32 array of 1000 elements in a small file",
         gguf(raw_kvs=gstr("a") + struct.pack("<IIQ", ARR, I32, 1000) + bytes(40)))
    case("string-array-past-eof", "cannot fit", "string array whose count cannot fit (8 bytes per element minimum)",
         gguf(raw_kvs=gstr("a") + struct.pack("<IIQ", ARR, STR, 100000) + bytes(64)))
    case("string-array-element-past-eof", "truncated", "an element of a string array runs past the end",
         gguf(raw_kvs=gstr("a") + struct.pack("<IIQ", ARR, STR, 2) + gstr("ok") + struct.pack("<Q", 5000)))
    # 6. counts
    case("tensor-count-negative", "negative", "tensor count 2^63 + 5 (negative as int64)",
         gguf(n_tensors=(1 << 63) + 5))
    case("kv-count-negative", "negative", "metadata count 2^64 - 1", gguf(n_kv=(1 << 64) - 1))
    case("tensor-count-too-large", "cannot fit", "tensor count 2^40 in a small file", gguf(n_tensors=1 << 40))
    case("kv-count-too-large", "cannot fit", "metadata count 2^33 in a small file", gguf(n_kv=1 << 33))
    # 7. duplicates and empty key
    case("duplicate-key", "duplicate metadata key", "general.architecture twice",
         gguf(kvs=[("general.architecture", STR, "llama"), ("general.architecture", STR, "llama")]))
    case("duplicate-tensor", "duplicate tensor name", "two tensors named w",
         gguf(tensors=[("w", [8], F32_T, bytes(32)), ("w", [8], F32_T, bytes(32))]))
    case("empty-key", "empty key", "a key of length 0", gguf(kvs=[("", U32, 1)]))
    # 8. value types
    case("value-type-unknown", "unknown value type 13", "value type 13",
         gguf(raw_kvs=gstr("a") + struct.pack("<II", 13, 0)))
    case("nested-array", "array of arrays", "array whose element type is ARRAY",
         gguf(raw_kvs=gstr("a") + struct.pack("<IIQ", ARR, ARR, 1) + struct.pack("<IQ", U8, 1) + b"\1"))
    case("array-type-unknown", "unknown value type 99", "array of element type 99",
         gguf(raw_kvs=gstr("a") + struct.pack("<IIQ", ARR, 99, 1) + bytes(8)))
    # 9. general.alignment
    case("alignment-not-u32", "must be UINT32", "general.alignment stored as UINT64",
         gguf(kvs=[("general.alignment", U64, 32)]))
    case("alignment-not-pow2", "power of two", "general.alignment 48",
         gguf(kvs=[("general.alignment", U32, 48)], alignment=48))
    case("alignment-zero", "power of two", "general.alignment 0", gguf(kvs=[("general.alignment", U32, 0)]))
    # 10. tensor infos
    case("name-too-long", "limit is 63", "tensor name of 64 bytes", gguf(tensors=[("n" * 64, [8], F32_T, bytes(32))]))
    case("n-dims-5", "at most 4", "tensor with 5 dimensions",
         gguf(tensors=[("w", [2, 1, 1, 1, 1], F32_T, bytes(8))]))
    case("negative-dim", "negative dimension", "ne[1] = -2", gguf(tensors=[("w", [4, -2], F32_T, bytes(32))]))
    case("zero-dim", "zero-sized dimension", "ne[1] = 0 (llama.cpp divides by it)",
         gguf(tensors=[("w", [4, 0], F32_T, b"")]))
    case("elements-overflow", "more elements than fit", "ne = [2^32, 2^32] overflows int64",
         gguf(tensors=[("w", [1 << 32, 1 << 32], F32_T, bytes(32))]))
    case("bytes-overflow", "byte size overflows", "2^61 F64 elements: 2^64 bytes",
         gguf(tensors=[("w", [1 << 61], 28, bytes(32))]))
    case("type-unknown", "unknown or removed type id 42", "tensor type 42",
         gguf(tensors=[("w", [8], 42, bytes(32))]))
    case("type-removed", "unknown or removed type id 4", "tensor type 4 (Q4_2, removed)",
         gguf(tensors=[("w", [32], 4, bytes(32))]))
    case("block-size", "not a multiple of Q8_0's block size 32", "Q8_0 tensor with rows of 33",
         gguf(tensors=[("q", [33, 1], Q8_0_T, bytes(34))]))
    # 11. offsets
    two = [("a", [8], F32_T, bytes(32)), ("b", [8], F32_T, bytes(32))]
    case("offset-gap", "expected 32", "second tensor at 64 instead of 32 (aligned, but a gap)",
         gguf(tensors=two, offsets=[0, 64]) + bytes(32))
    case("offset-overlap", "expected 32", "both tensors at offset 0", gguf(tensors=two, offsets=[0, 0]))
    case("offset-misaligned", "expected 0", "first tensor at offset 4", gguf(tensors=[q8], offsets=[4]))
    case("offset-huge", "expected 0", "offset 2^64 - 32", gguf(offsets=[(1 << 64) - 32]))
    head = 24 + len(kv("general.architecture", STR, "llama")) + len(tinfo("a", [8], F32_T, 0)) * 2
    assert head % 32 != 0
    case("data-past-eof", "data section should start", "file ends before the aligned data section",
         gguf(tensors=two)[:head])
    case("key-nul", "NUL byte", "key containing a NUL byte", gguf(kvs=[("a\0b", U32, 1)]))
    case("name-nul", "NUL byte", "tensor name containing a NUL byte", gguf(tensors=[("w\0x", [8], F32_T, bytes(32))]))
    case("control-in-key", "duplicate metadata key a\\x0ab", "duplicate key with a newline: message stays one line",
         gguf(kvs=[("a\nb", U32, 1), ("a\nb", U32, 1)]))
    with open(os.path.join(HERE, "MANIFEST-gguf.txt"), "w") as f:
        for name, expect, why in CASES:
            f.write(f"{name}\t{expect}\t{why}\n")

    os.makedirs(SEEDS, exist_ok=True)
    every = [("general.architecture", STR, "llama"), ("u8", U8, 7), ("i8", I8, -7), ("u16", U16, 700),
             ("i16", I16, -700), ("u32", U32, 70000), ("i32", I32, -70000), ("f32", F32, 0.5), ("b", BOOL, 1),
             ("u64", U64, 1 << 40), ("i64", I64, -(1 << 40)), ("f64", F64, 0.25),
             ("strs", ARR, (STR, ["a", "", "bc"])), ("ints", ARR, (I32, [1, -2, 3])),
             ("floats", ARR, (F32, [0.5, 1.5])), ("bools", ARR, (BOOL, [0, 1])), ("u64s", ARR, (U64, [1, 2]))]
    seeds = {
        "all-types.gguf": gguf(kvs=every),
        "tiny.gguf": gguf(),
        "v2.gguf": gguf(version=2),
        "no-tensors.gguf": gguf(tensors=[]),
        "align64.gguf": gguf(kvs=[("general.alignment", U32, 64)], tensors=two + [q8], alignment=64),
        "four-dims.gguf": gguf(tensors=[("w", [2, 2, 2, 2], F32_T, bytes(64)), q8]),
        "split.gguf": gguf(kvs=[("split.no", U16, 0), ("split.count", U16, 2), ("split.tensors.count", I32, 3)]),
    }
    for name, data in seeds.items():
        with open(os.path.join(SEEDS, name), "wb") as f:
            f.write(data)

    # A valid split model for the inspect tests: metadata in the first shard only (§1.9).
    split_keys = lambda no: [("split.no", U16, no), ("split.count", U16, 2), ("split.tensors.count", I32, 3)]
    shards = [gguf(kvs=[("general.architecture", STR, "llama")] + split_keys(0), tensors=two),
              gguf(kvs=split_keys(1), tensors=[q8])]
    for i, data in enumerate(shards):
        with open(os.path.join(HERE, "..", "gguf", f"split-{i + 1:05d}-of-00002.gguf"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
