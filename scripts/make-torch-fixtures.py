#!/usr/bin/python3
"""Builds the small PyTorch checkpoints of tests/data/torch/ with Debian's python3-torch (1.13).

Each variant folder holds the checkpoint(s) plus what torch itself loads from them:
  expected.json  {"path": checkpoint to open, "state_key": optional,
                  "tensors": [{"name", "dtype", "shape", "contiguous", "offset", "bytes"}]}
  expected.bin   the tensors' values, contiguous little-endian, concatenated in that order.
Meta shards are merged with torch.cat along the axis of FORMATS.md §6.4.

hostile/ holds crafted files (names start pickle-, tensor-, storage-, zip-, legacy-) that must be
refused; hostile/MANIFEST.json says what each one is. Files that would run code if unpickled by
Python would create /tmp/nomoat-pwned-<tag>.

Usage: /usr/bin/python3 scripts/make-torch-fixtures.py [OUT_DIR]   (default tests/data/torch)
"""
import io
import json
import os
import shutil
import struct
import sys
import zipfile
import zlib

import torch

torch.manual_seed(1234)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "torch")

DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def write_expected(folder, path, tensors, state_key=None, order=None):
    """tensors: dict name -> tensor as torch loads it."""
    entries, blob = [], bytearray()
    for name, t in tensors.items():
        b = tensor_bytes(t)
        entries.append(dict(name=name, dtype=DTYPE_NAMES[t.dtype], shape=list(t.shape),
                            contiguous=bool(t.is_contiguous()), offset=len(blob), bytes=len(b)))
        blob += b
    doc = {"path": path, "tensors": entries}
    if state_key:
        doc["state_key"] = state_key
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(folder, "expected.bin"), "wb") as f:
        f.write(blob)


def fresh(name):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def small_state_dict():
    return {
        "embed.weight": torch.randn(16, 8),
        "norm.weight": torch.randn(8).half(),
        "proj.weight": torch.randn(12, 8).to(torch.bfloat16),
        "proj.bias": torch.randn(12, dtype=torch.float64),
        "steps": torch.tensor(12345678901, dtype=torch.int64),
        "ids": torch.arange(-5, 5, dtype=torch.int32),
        "small": torch.arange(-4, 4, dtype=torch.int8),
        "shorts": torch.arange(-300, 300, 100, dtype=torch.int16),
        "bytes": torch.arange(250, 256, dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
    }


def save_and_expect(name, obj, fname="model.pt", state_key=None, pick=None, **save_kw):
    d = fresh(name)
    p = os.path.join(d, fname)
    torch.save(obj, p, **save_kw)
    loaded = torch.load(p)
    sd = pick(loaded) if pick else loaded
    write_expected(d, fname, {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}, state_key)
    return p


# ---- zip writer for variants torch.save cannot produce (ZIP64, big-endian, hostile) ----

def read_zip_entries(path):
    z = zipfile.ZipFile(path)
    return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries, zip64=False, compress=(), align=64):
    """entries: [(name, bytes)]. zip64: saturate every 32-bit field and use ZIP64 records."""
    out = bytearray()
    central = []
    for name, data in entries:
        nb = name.encode()
        method, payload = 0, data
        if name in compress:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
            method = 8
        crc = zlib.crc32(data) & 0xFFFFFFFF
        off = len(out)
        extra = b""
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, len(data), len(payload))
        # pad with an "FB" extra field so the payload starts on `align`
        base = off + 30 + len(nb) + len(extra)
        pad = (-(base + 4)) % align
        extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        csize = 0xFFFFFFFF if zip64 else len(payload)
        usize = 0xFFFFFFFF if zip64 else len(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0, method, 0, 0, crc, csize, usize,
                           len(nb), len(extra)) + nb + extra
        out += payload
        central.append((nb, method, crc, len(payload), len(data), off))
    cd_off = len(out)
    for nb, method, crc, clen, ulen, off in central:
        if zip64:
            extra = struct.pack("<HHQQQ", 1, 24, ulen, clen, off)
            out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(nb), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + nb + extra
        else:
            out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, clen, ulen,
                               len(nb), 0, 0, 0, 0, 0, off) + nb
    cd_size = len(out) - cd_off
    n = len(central)
    if zip64:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_off, 0)
    with open(path, "wb") as f:
        f.write(out)


def main():
    os.makedirs(OUT, exist_ok=True)

    # pickle protocols 4 and 5 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
    for proto in (4, 5):
        save_and_expect("proto%d" % proto, small_state_dict(), pickle_protocol=proto)

    # non-contiguous views, shared storages (tied weights), parameters, offsets into storages
    base = torch.randn(6, 10)
    emb = torch.randn(32, 8)
    views = {
        "tok_embeddings.weight": emb,
        "output.weight": emb,                      # tied: the same tensor twice
        "transposed": base.t(),                    # strides (1, 10)
        "column": base[:, 3],                      # stride 10, offset 3
        "strided_rows": base[::2, 1:9:3],          # both dims strided, offset 1
        "narrowed": base.narrow(0, 2, 3),          # contiguous, offset 20
        "scalar_view": base[4, 7],                 # 0-d view with an offset
        "param": torch.nn.Parameter(torch.randn(4, 5)),
        "half_t": torch.randn(5, 7).half().t(),
        "expanded": torch.randn(3, 1).expand(3, 4),  # stride 0
        "perm3d": torch.randn(2, 3, 4).permute(2, 0, 1),
    }
    save_and_expect("views", views)
    # the legacy (pre-1.6) format of the same objects
    save_and_expect("legacy", views, _use_new_zipfile_serialization=False)
    save_and_expect("legacy-proto2", small_state_dict(), _use_new_zipfile_serialization=False)

    # nested training checkpoint
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5), torch.nn.Linear(5, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 6)).sum().backward()
    opt.step()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(),
            "model_args": {"dim": 6, "n_layers": 2, "norm_eps": 1e-5, "name": "tiny", "flags": (True, None)},
            "epoch": 3}
    save_and_expect("nested", ckpt, pick=lambda c: c["model"])
    # the same with an explicit --state-key path into a deeper dict
    deeper = {"ema": {"weights": {k: v * 2 for k, v in model.state_dict().items()}}, "step": 7}
    d = fresh("nested-key")
    torch.save(deeper, os.path.join(d, "model.pt"))
    write_expected(d, "model.pt", torch.load(os.path.join(d, "model.pt"))["ema"]["weights"], "ema/weights")

    # sharded pytorch_model.bin.index.json folder
    d = fresh("sharded")
    sd = small_state_dict()
    names = list(sd)
    shards = {"pytorch_model-00001-of-00002.bin": names[:5], "pytorch_model-00002-of-00002.bin": names[5:]}
    weight_map = {}
    for fn, ks in shards.items():
        torch.save({k: sd[k] for k in ks}, os.path.join(d, fn))
        weight_map.update({k: fn for k in ks})
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(len(tensor_bytes(t)) for t in sd.values())},
                   "weight_map": weight_map}, f, indent=1)
    loaded = {}
    for fn in sorted(shards):
        loaded.update(torch.load(os.path.join(d, fn)))
    write_expected(d, ".", loaded)

    # ZIP64: the same archive torch.save wrote, rewritten with every 32-bit field saturated
    d = fresh("zip64")
    tmp = os.path.join(d, "plain.pt")
    torch.save(small_state_dict(), tmp)
    entries = read_zip_entries(tmp)
    os.remove(tmp)
    p = os.path.join(d, "model.pt")
    write_zip(p, entries, zip64=True)
    write_expected(d, "model.pt", torch.load(p))  # torch itself reads the ZIP64 archive

    # big-endian storages: byteorder "big" and every storage byte-swapped. torch 1.13 cannot read
    # byteorder records, so the expected values are those of the little-endian original.
    d = fresh("bigendian")
    sd = small_state_dict()
    sd["view_t"] = sd["embed.weight"].t()
    tmp = os.path.join(d, "little.pt")
    torch.save(sd, tmp)
    expected = torch.load(tmp)
    z = zipfile.ZipFile(tmp)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    prefix = pkl[: -len("data.pkl")]
    # element size of each storage key: in each persistent id the storage class (a GLOBAL or a
    # memo reference to one) is immediately followed by the key string
    import pickletools
    cls_size = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8, "LongStorage": 8,
                "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}
    key_size, memo, prev = {}, {}, None
    for op, arg, _ in pickletools.genops(z.read(pkl)):
        if op.name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = prev
            continue
        if op.name in ("BINGET", "LONG_BINGET"):
            prev = memo.get(arg)
            continue
        if op.name in ("BINUNICODE", "SHORT_BINUNICODE") and isinstance(prev, int):
            key_size[arg] = prev
        if op.name == "GLOBAL" and arg.startswith("torch ") and arg.split(" ")[1] in cls_size:
            prev = cls_size[arg.split(" ")[1]]
        else:
            prev = ("other", op.name, arg)
    out = []
    for i in z.infolist():
        data = z.read(i.filename)
        if i.filename.startswith(prefix + "data/"):
            es = key_size[i.filename[len(prefix) + 5:]]
            if es > 1:
                data = b"".join(data[j:j + es][::-1] for j in range(0, len(data), es))
        out.append((i.filename, data))
    out.append((prefix + "byteorder", b"big"))
    os.remove(tmp)
    write_zip(os.path.join(d, "model.pt"), out)
    write_expected(d, "model.pt", expected)

    # a tiny Meta folder: 2 model-parallel shards plus rope.freqs, merged per §6.4
    d = fresh("meta")
    dim, ffn, vocab = 8, 12, 10
    full = {"tok_embeddings.weight": torch.randn(vocab, dim).to(torch.bfloat16),
            "norm.weight": torch.randn(dim).to(torch.bfloat16),
            "output.weight": torch.randn(vocab, dim).to(torch.bfloat16)}
    for name, shape in (("attention.wq.weight", (dim, dim)), ("attention.wk.weight", (dim, dim)),
                        ("attention.wv.weight", (dim, dim)), ("attention.wo.weight", (dim, dim)),
                        ("feed_forward.w1.weight", (ffn, dim)), ("feed_forward.w2.weight", (dim, ffn)),
                        ("feed_forward.w3.weight", (ffn, dim)), ("attention_norm.weight", (dim,)),
                        ("ffn_norm.weight", (dim,))):
        full["layers.0." + name] = torch.randn(*shape).to(torch.bfloat16)

    def axis(n):
        return 1 if n == "tok_embeddings.weight" or n.endswith("attention.wo.weight") or \
            n.endswith("feed_forward.w2.weight") else 0

    for s in range(2):
        shard = {}
        for n, t in full.items():
            if t.dim() == 1:
                shard[n] = t.clone()
            else:
                shard[n] = t.chunk(2, dim=axis(n))[s].clone()
        shard["rope.freqs"] = torch.randn(4)
        torch.save(shard, os.path.join(d, "consolidated.%02d.pth" % s))
    with open(os.path.join(d, "params.json"), "w") as f:
        json.dump({"dim": dim, "n_layers": 1, "n_heads": 2, "vocab_size": vocab, "norm_eps": 1e-5}, f)
    a = torch.load(os.path.join(d, "consolidated.00.pth"))
    b = torch.load(os.path.join(d, "consolidated.01.pth"))
    merged = {n: (a[n] if a[n].dim() == 1 else torch.cat([a[n], b[n]], dim=axis(n))) for n in a if n != "rope.freqs"}
    write_expected(d, ".", merged)

    make_hostile()


# ---- hostile files ----

def P(*parts):
    out = b""
    for p in parts:
        out += p if isinstance(p, bytes) else p.encode("latin1")
    return out


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def pid(cls, key, numel):
    return P(b"(", binunicode("storage"), "ctorch\n%s\n" % cls, binunicode(key), binunicode("cpu"),
             b"J" + struct.pack("<i", numel) if numel < 2 ** 31 else b"\x8a\x08" + struct.pack("<q", numel), b"tQ")


def tup(*items):
    return P(b"(", *items, b"t")


def i32(v):
    return b"J" + struct.pack("<i", v)


def i64(v):
    return b"\x8a\x08" + struct.pack("<q", v)


def rebuild(storage, offset, size, stride):
    return P("ctorch._utils\n_rebuild_tensor_v2\n(", storage, offset, tup(*size), tup(*stride),
             b"\x89", "ccollections\nOrderedDict\n)R", b"tR")


def state_dict_pickle(*items):
    return P(b"\x80\x02}(", *items, b"u.")


def torch_zip(path, pkl, storages, **kw):
    entries = [("archive/data.pkl", pkl)] + [("archive/data/%s" % k, v) for k, v in storages] + \
              [("archive/version", b"3\n")]
    write_zip(path, entries, **kw)


def make_hostile():
    d = os.path.join(OUT, "hostile")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    manifest = {}

    def add(name, what, data=None, **zip_kw):
        manifest[name] = what
        path = os.path.join(d, name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        return path

    f32 = struct.pack("<4f", 1, 2, 3, 4)
    good_t = rebuild(pid("FloatStorage", "0", 4), i32(0), [i32(4)], [i32(1)])

    def zipped(name, what, pkl, storages=(("0", f32),), **kw):
        manifest[name] = what
        torch_zip(os.path.join(d, name), pkl, storages, **kw)

    pwn = "import os; open('/tmp/nomoat-pwned-%s','w')"
    # code execution attempts through every callable-producing route
    zipped("pickle-exec-stack-global.pt", "protocol 4 STACK_GLOBAL builtins.exec + REDUCE",
           P(b"\x80\x04\x8c\x08builtins\x94\x8c\x04exec\x94\x93\x94", binunicode(pwn % "stack-global"), b"\x85R."))
    zipped("pickle-rebuild-from-type-gadget.pt", "_rebuild_from_type_v2 asked to call collections.OrderedDict",
           P(b"\x80\x02}(", binunicode("a"), "ctorch._tensor\n_rebuild_from_type_v2\n(",
             "ccollections\nOrderedDict\n", "ctorch\nTensor\n", b")", b"}", b"tRu."))
    zipped("pickle-inst-opcode.pt", "INST opcode (protocol 0 call of os.system)",
           P(b"(", binunicode("touch /tmp/nomoat-pwned-inst"), "ios\nsystem\n."))
    zipped("pickle-obj-opcode.pt", "OBJ opcode", P(b"\x80\x02(cos\nsystem\n", binunicode("true"), b"o."))
    zipped("pickle-newobj-ex.pt", "NEWOBJ_EX opcode", P(b"\x80\x04ccollections\nOrderedDict\n)}\x92."))
    zipped("pickle-newobj-class.pt", "NEWOBJ of an allowlisted but non-constructible class",
           P(b"\x80\x02ctorch\nFloatStorage\n)\x81."))
    zipped("pickle-call-storage-class.pt", "REDUCE of a storage class (allowlisted name, not callable)",
           P(b"\x80\x02ctorch\nFloatStorage\n)R."))
    zipped("pickle-global-no-newline.pt", "GLOBAL name without its terminating newline",
           P(b"\x80\x02c" + b"a" * 300))
    zipped("pickle-protocol-1.pt", "protocol 1 pickle", P(b"\x80\x01}."))
    zipped("pickle-memo-huge-index.pt", "LONG_BINPUT at index 2^32-16", P(b"\x80\x02}r\xf0\xff\xff\xff."))
    zipped("pickle-string-len-huge.pt", "BINUNICODE8 of length 2^62",
           P(b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"abc."))
    zipped("pickle-frame-huge.pt", "FRAME longer than the pickle", P(b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"}."))
    zipped("pickle-long4-huge.pt", "LONG4 integer of 2^31 bytes", P(b"\x80\x02\x8b\xff\xff\xff\x7f\x00."))
    zipped("pickle-cyclic-list.pt", "a list that contains itself, no tensors", P(b"\x80\x02]q\x00h\x00a."))
    zipped("pickle-stack-underflow.pt", "TUPLE2 on an empty stack", P(b"\x80\x02\x86."))
    zipped("pickle-no-stop.pt", "pickle without STOP", P(b"\x80\x02}"))
    zipped("pickle-persid-not-storage.pt", "persistent id that is not a storage tuple",
           P(b"\x80\x02}(", binunicode("a"), binunicode("x"), b"Qu."))
    zipped("pickle-persid-class-not-storage.pt", "persistent id naming collections.OrderedDict as storage class",
           P(b"\x80\x02}(", binunicode("a"), "((", binunicode("storage"), "ccollections\nOrderedDict\n",
             binunicode("0"), binunicode("cpu"), i32(4), b"tQu."))
    # bounded memory: ~1M one-byte container pushes exceed the unpickler budget
    zipped("pickle-memory-bomb.pt", "900,000 nested TUPLE1 (memory budget)", P(b"\x80\x02N", b"\x85" * 900000, b"."))
    # one memoized tensor under 150,000 names: the tensor index must stay inside the memory bound
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    names = b"".join(b"\x8c\x04" + "".join(alphabet[(i // 36 ** k) % 36] for k in range(4)).encode() + b"h\x01"
                     for i in range(1, 150000))
    zipped("tensor-many-names.pt", "one tensor memoized under 150,000 names (index memory bound)",
           P(b"\x80\x02}(", binunicode("a"), good_t, b"q\x01", names, b"u."))

    # tensors
    zipped("tensor-offset-out-of-bounds.pt", "view offset past the end of its storage",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "0", 4), i32(3), [i32(2)], [i32(1)])))
    zipped("tensor-stride-out-of-bounds.pt", "stride walks past the storage",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "0", 4), i32(0), [i32(2), i32(2)], [i32(3), i32(1)])))
    zipped("tensor-shape-overflow.pt", "shape whose element count overflows 64 bits",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "0", 4), i32(0),
                                                      [i64(1 << 40), i64(1 << 40)], [i32(0), i32(0)])))
    zipped("tensor-negative-size.pt", "negative dimension",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "0", 4), i32(0), [i32(-1)], [i32(1)])))
    zipped("tensor-too-many-dims.pt", "9 dimensions",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "0", 4), i32(0), [i32(1)] * 9, [i32(1)] * 9)))
    zipped("tensor-size-stride-mismatch.pt", "size and stride of different lengths",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "0", 4), i32(0), [i32(2), i32(2)], [i32(1)])))
    zipped("tensor-duplicate-name.pt", "the same tensor name twice in the state dict",
           state_dict_pickle(binunicode("a"), good_t, binunicode("a"), good_t))
    zipped("tensor-not-a-storage.pt", "_rebuild_tensor_v2 given a string instead of a storage",
           state_dict_pickle(binunicode("a"), P("ctorch._utils\n_rebuild_tensor_v2\n(", binunicode("s"), i32(0),
                                                tup(i32(1)), tup(i32(1)), b"\x89}tR")))
    # storages
    zipped("storage-missing-entry.pt", "persistent id names a storage with no zip entry",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "7", 4), i32(0), [i32(4)], [i32(1)])))
    zipped("storage-numel-exceeds-entry.pt", "storage numel larger than its zip entry",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "0", 1 << 40), i32(0), [i32(4)], [i32(1)])))
    zipped("storage-quantized-class.pt", "QInt8Storage (quantized tensors are not supported)",
           state_dict_pickle(binunicode("a"), rebuild(pid("QInt8Storage", "0", 16), i32(0), [i32(4)], [i32(1)])))
    zipped("storage-two-classes.pt", "one storage key used with two storage classes",
           state_dict_pickle(binunicode("a"), good_t, binunicode("b"),
                             rebuild(pid("HalfStorage", "0", 8), i32(0), [i32(8)], [i32(1)])))
    zipped("storage-key-traversal.pt", "storage key ../../etc/passwd",
           state_dict_pickle(binunicode("a"), rebuild(pid("FloatStorage", "../../../etc/passwd", 4), i32(0), [i32(4)], [i32(1)])))
    # zip containers
    ok_pkl = state_dict_pickle(binunicode("a"), good_t)
    zipped("zip-compressed-pickle.pt", "data.pkl deflated (torch never compresses)", ok_pkl, compress=("archive/data.pkl",))
    zipped("zip-compressed-storage.pt", "storage entry deflated", ok_pkl, compress=("archive/data/0",))
    manifest["zip-no-data-pkl.pt"] = "archive without data.pkl"
    write_zip(os.path.join(d, "zip-no-data-pkl.pt"), [("archive/data/0", f32), ("archive/version", b"3\n")])
    # build variants by patching a good archive
    good = os.path.join(d, ".good.pt")
    torch_zip(good, ok_pkl, [("0", f32)])
    raw = bytearray(open(good, "rb").read())
    os.remove(good)
    eocd = raw.rfind(b"PK\x05\x06")
    cd_off = struct.unpack_from("<I", raw, eocd + 16)[0]

    def patched(name, what, edits, cut=None):
        b = bytearray(raw)
        for off, fmt, val in edits:
            struct.pack_into(fmt, b, off, val)
        add(name, what, bytes(b[:cut] if cut else b))

    patched("zip-cd-offset-past-eof.pt", "central directory offset beyond the file", [(eocd + 16, "<I", 0x7FFFFFF0)])
    patched("zip-cd-size-huge.pt", "central directory size larger than the file", [(eocd + 12, "<I", 0xFFFFFFF0)])
    patched("zip-entry-count-huge.pt", "65534 entries claimed", [(eocd + 10, "<H", 0xFFFE), (eocd + 8, "<H", 0xFFFE)])
    patched("zip-local-offset-past-eof.pt", "entry local header offset beyond the file",
            [(cd_off + 42, "<I", 0x7FFFFFF0)])
    patched("zip-entry-size-past-eof.pt", "data.pkl size runs past the end of the file",
            [(cd_off + 20, "<I", 0x7FFFFFF0), (cd_off + 24, "<I", 0x7FFFFFF0)])
    patched("zip-saturated-no-zip64.pt", "saturated end record without a ZIP64 locator",
            [(eocd + 16, "<I", 0xFFFFFFFF)])
    patched("zip-no-local-header.pt", "local header signature of the storage entry destroyed",
            [(raw.find(b"PK\x03\x04", 1), "<I", 0x12345678)])
    b = bytearray(raw)
    del b[cd_off + 10: cd_off + 40]
    add("zip-truncated-cd.pt", "central directory cut short", bytes(b))
    # ZIP64 locator pointing outside the file
    z64 = os.path.join(d, "zip-zip64-bad-locator.pt")
    torch_zip(z64, ok_pkl, [("0", f32)], zip64=True)
    b = bytearray(open(z64, "rb").read())
    loc = b.rfind(b"PK\x06\x07")
    struct.pack_into("<Q", b, loc + 8, 1 << 60)
    open(z64, "wb").write(bytes(b))
    manifest["zip-zip64-bad-locator.pt"] = "ZIP64 locator pointing far beyond the file"
    # duplicate entry names
    manifest["zip-duplicate-entry.pt"] = "two entries named archive/data.pkl"
    write_zip(os.path.join(d, "zip-duplicate-entry.pt"),
              [("archive/data.pkl", ok_pkl), ("archive/data.pkl", P(b"\x80\x02cos\nsystem\n.")),
               ("archive/data/0", f32)])
    # legacy format
    legacy = io.BytesIO()
    torch.save({"a": torch.arange(4.0)}, legacy, _use_new_zipfile_serialization=False)
    lg = legacy.getvalue()
    add("legacy-truncated-storage.pt", "legacy file cut inside the raw storage", lg[:-5])
    add("legacy-bad-protocol.pt", "legacy protocol version 1000", lg.replace(b"\x80\x02M\xe9\x03.", b"\x80\x02M\xe8\x03.", 1))
    cnt = lg.rfind(struct.pack("<Q", 4))
    add("legacy-count-huge.pt", "legacy storage element count 2^60",
        lg[:cnt] + struct.pack("<Q", 1 << 60) + lg[cnt + 8:])
    add("legacy-os-system.pt", "legacy object pickle calling os.system",
        lg[:lg.index(b"uu.") + 3] + P(b"\x80\x02cos\nsystem\n", binunicode("touch /tmp/nomoat-pwned-legacy"), b"\x85R."))
    with open(os.path.join(d, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
