// Compares `nomoat-inspect --json FILE` with what @huggingface/gguf (an independent JavaScript
// reader) reports for the same file: every metadata key (order, value type, value) and every
// tensor (order, name, type, shape, offset within the data section).
//   node compare-hf-gguf.mjs NOMOAT_INSPECT FILE...      (NODE_PATH must find @huggingface/gguf)
// Prints "ok FILE (N keys, M tensors)" per file, or the differences; exits 1 on any difference.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || ".", "x.js"));
const { gguf, GGUFValueType, GGMLQuantizationType } = require("@huggingface/gguf");

const [inspect, ...files] = process.argv.slice(2);
const PSEUDO = new Set(["version", "tensor_count", "kv_count"]); // header fields the library lists as metadata
let failures = 0;

function sameScalar(type, mine, theirs) {
  if (typeof theirs === "bigint") return typeof mine === "number" && Number(theirs) === mine;
  if (type === GGUFValueType.FLOAT32 || type === GGUFValueType.FLOAT64) {
    if (Number.isNaN(theirs)) return mine === "nan";
    if (!Number.isFinite(theirs)) return mine === (theirs > 0 ? "inf" : "-inf");
    // nomoat prints the shortest decimal that reads back as the same float32
    return type === GGUFValueType.FLOAT32 ? Math.fround(mine) === theirs : mine === theirs;
  }
  return mine === theirs;
}

for (const file of files) {
  const errors = [];
  const mine = JSON.parse(execFileSync(inspect, ["--json", file], { maxBuffer: 1 << 30 }).toString());
  const theirs = await gguf(path.resolve(file), { allowLocalFile: true, typedMetadata: true });
  const theirKeys = Object.keys(theirs.typedMetadata).filter((k) => !PSEUDO.has(k));
  const myKeys = Object.keys(mine.metadata);
  if (JSON.stringify(theirKeys) !== JSON.stringify(myKeys))
    errors.push(`metadata keys differ:\n  nomoat: ${myKeys.join(", ")}\n  hf:     ${theirKeys.join(", ")}`);
  if (Number(theirs.typedMetadata.version.value) !== mine.version) errors.push("version differs");
  for (const key of theirKeys) {
    if (!(key in mine.metadata)) continue;
    const t = theirs.typedMetadata[key];
    const typeName = t.type === GGUFValueType.ARRAY ? `ARRAY[${GGUFValueType[t.subType]}]` : GGUFValueType[t.type];
    if (mine.metadata_types[key] !== typeName) errors.push(`${key}: type ${mine.metadata_types[key]} vs ${typeName}`);
    const m = mine.metadata[key];
    if (t.type === GGUFValueType.ARRAY) {
      if (!Array.isArray(m) || m.length !== t.value.length) {
        errors.push(`${key}: array length ${m && m.length} vs ${t.value.length}`);
        continue;
      }
      const bad = t.value.findIndex((v, i) => !sameScalar(t.subType, m[i], v));
      if (bad >= 0) errors.push(`${key}[${bad}]: ${JSON.stringify(m[bad])} vs ${String(t.value[bad])}`);
    } else if (!sameScalar(t.type, m, t.value)) {
      errors.push(`${key}: ${JSON.stringify(m)} vs ${String(t.value)}`);
    }
  }
  const ti = theirs.tensorInfos;
  if (ti.length !== mine.tensors.length) errors.push(`tensor count ${mine.tensors.length} vs ${ti.length}`);
  const dataOffset = mine.files[0].data_offset;
  ti.forEach((t, i) => {
    const m = mine.tensors[i];
    if (!m) return;
    const shape = t.shape.map(Number);
    if (m.name !== t.name) errors.push(`tensor ${i}: name ${m.name} vs ${t.name}`);
    if (m.type !== GGMLQuantizationType[t.dtype]) errors.push(`${t.name}: type ${m.type} vs ${GGMLQuantizationType[t.dtype]}`);
    if (JSON.stringify(m.shape) !== JSON.stringify(shape) || t.n_dims !== m.shape.length)
      errors.push(`${t.name}: shape ${JSON.stringify(m.shape)} vs ${JSON.stringify(shape)} (n_dims ${t.n_dims})`);
    if (m.offset - dataOffset !== Number(t.offset)) errors.push(`${t.name}: offset ${m.offset - dataOffset} vs ${t.offset}`);
  });
  if (errors.length) {
    failures++;
    console.log(`DIFFERENT ${file}`);
    for (const e of errors.slice(0, 20)) console.log(`  ${e}`);
  } else {
    console.log(`ok ${file} (${myKeys.length} keys, ${ti.length} tensors)`);
  }
}
process.exit(failures ? 1 : 0);
