// Test oracle: per-position log-probabilities from node-llama-cpp (llama.cpp's CPU backend).
// Usage: node node_logprobs.mjs MODEL.gguf id,id,...
//   -> JSON {logprobs: [log p(id[1] | id[0]), ...], gaps: [log p(id[k+1]) - log p(most probable), ...]}
// Evaluates the ids in slices of 32 (one sequence, one context), asking for the whole next-token
// distribution after every position, and keeps the probability of the token that follows and of
// the most probable one. node-llama-cpp normalises probabilities with a float sum over the whole
// vocabulary (its AddonContext.cpp); the gap (a ratio of two probabilities) cancels that sum and
// is the difference of the two logits up to float rounding.
const { getLlama } = await import(process.env.NODE_PATH.split(":")[0] + "/node-llama-cpp/dist/index.js");

const [model_path, ids] = process.argv.slice(2);
const tokens = ids.split(",").map(Number);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: model_path });
const context = await model.createContext({ contextSize: Math.max(256, tokens.length), batchSize: 256, threads: Number(process.env.NODE_LLAMA_THREADS ?? 2),
                                            flashAttention: true });
const seq = context.getSequence();
const options = { temperature: 1, topK: model.tokens.length ?? 1000000, topP: 1, minP: 0 };
const logprobs = [], gaps = [];
for (let start = 0; start < tokens.length - 1; start += 32) {
    const slice = tokens.slice(start, Math.min(start + 32, tokens.length - 1))
        .map((t) => [t, { generateNext: { probabilities: true, options } }]);
    const out = await seq.controlledEvaluate(slice);
    out.forEach((o, k) => {
        const probs = o.next.probabilities;
        const p = probs.get(tokens[start + k + 1]) ?? 0;
        let best = 0;
        for (const q of probs.values()) if (q > best) best = q;
        logprobs.push(Math.log(p));
        gaps.push(Math.log(p) - Math.log(best));
    });
}
console.log(JSON.stringify({ logprobs, gaps }));
await context.dispose();
await model.dispose();
await llama.dispose();
