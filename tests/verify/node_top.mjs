// Test oracle: next-token probabilities from node-llama-cpp (llama.cpp's CPU backend) for given
// token ids. Usage: node node_top.mjs MODEL.gguf TOP id,id,... [ADAPTER.gguf[:SCALE] ...] -> JSON [{id, p}, ...]
// LoRA adapters go to createContext's `lora` option (llama.cpp applies them at run time).
// ESM ignores NODE_PATH: import the package from the folder node_setup installed it in.
const { getLlama } = await import(process.env.NODE_PATH.split(":")[0] + "/node-llama-cpp/dist/index.js");

const [model_path, top, ids, ...lora_args] = process.argv.slice(2);
const adapters = lora_args.map((a) => {
    const m = /^(.*):([-+0-9.eE]+)$/.exec(a);
    return m ? { filePath: m[1], scale: Number(m[2]) } : { filePath: a, scale: 1 };
});
const tokens = ids.split(",").map(Number);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: model_path });
// flash attention on, as llama-perplexity and llama-cli use it by default on the CPU backend
const context = await model.createContext({
    contextSize: 256, batchSize: 256, threads: Number(process.env.NODE_LLAMA_THREADS ?? 2), flashAttention: true,
    ...(adapters.length ? { lora: { adapters } } : {}),
});
const seq = context.getSequence();
const input = tokens.slice(0, -1);
input.push([tokens[tokens.length - 1], {
    generateNext: { probabilities: true, options: { temperature: 1, topK: model.tokens.length ?? 1000000, topP: 1, minP: 0 } },
}]);
const out = await seq.controlledEvaluate(input);
const probs = out[out.length - 1].next.probabilities;
const res = [];
for (const [id, p] of probs) {
    res.push({ id, p });
    if (res.length >= Number(top)) break;
}
console.log(JSON.stringify(res));
await context.dispose();
await model.dispose();
await llama.dispose();
