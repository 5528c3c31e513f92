// Tokenizes with real llama.cpp (node-llama-cpp): add_special = false, parse_special = false.
//   node tokenize_llamacpp.mjs MODEL.gguf --file TEXT OUT.bin     (int32 LE ids)
//   node tokenize_llamacpp.mjs MODEL.gguf --json STRINGS.json     (prints [[ids...], ...])
// ESM ignores NODE_PATH: import the package from the folder node_setup installed it in.
const { getLlama } = await import(process.env.NODE_PATH.split(":")[0] + "/node-llama-cpp/dist/index.js");
import fs from "fs";
const [model, mode, input, out] = process.argv.slice(2);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const m = await llama.loadModel({ modelPath: model, vocabOnly: true });
if (mode === "--file") {
    const ids = m.tokenize(fs.readFileSync(input, "utf8"), false);
    fs.writeFileSync(out, Buffer.from(new Int32Array(ids).buffer));
} else {
    const strings = JSON.parse(fs.readFileSync(input, "utf8"));
    console.log(JSON.stringify(strings.map(s => Array.from(m.tokenize(s, false)))));
}
await m.dispose();
await llama.dispose();
