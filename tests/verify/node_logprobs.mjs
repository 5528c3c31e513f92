// Test oracle: per-position log-probabilities from node-llama-cpp (llama.cpp's CPU backend).
// Usage: node node_logprobs.mjs MODEL.gguf id,id,... -> JSON [log p(id[1] | id[0]), log p(id[2] | id[..1]), ...]
// Evaluates the ids in slices of 32 (one sequence, one context), asking for the whole next-token
// distribution after every position, and keeps only the probability of the token that follows.
const { getLlama } = await import(process.env.NODE_PATH.split(":")[0] + "/node-llama-cpp/dist/index.js");

const [model_path, ids] = process.argv.slice(2);
const tokens = ids.split(",").map(Number);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: model_path });
const context = await model.createContext({ contextSize: Math.max(256, tokens.length), batchSize: 256, threads: 2,
                                            flashAttention: true });
const seq = context.getSequence();
const options = { temperature: 1, topK: model.tokens.length ?? 1000000, topP: 1, minP: 0 };
const res = [];
for (let start = 0; start < tokens.length - 1; start += 32) {
    const slice = tokens.slice(start, Math.min(start + 32, tokens.length - 1))
        .map((t) => [t, { generateNext: { probabilities: true, options } }]);
    const out = await seq.controlledEvaluate(slice);
    out.forEach((o, k) => {
        const next = tokens[start + k + 1];
        const p = o.next.probabilities.get(next);
        res.push(p > 0 ? Math.log(p) : -Infinity);
    });
}
console.log(JSON.stringify(res));
await context.dispose();
await model.dispose();
await llama.dispose();
