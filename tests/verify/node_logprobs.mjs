// Test oracle: per-position log-probabilities from node-llama-cpp (llama.cpp's CPU backend).
// Usage: node node_logprobs.mjs MODEL.gguf id,id,...
//   -> JSON {gaps: [log p(id[k+1] | id[..k]) - log p(most probable), ...], whole: N}
// Evaluates the ids in slices of 32 (one sequence, one context) and asks for the next-token
// distribution after every position. node-llama-cpp normalises probabilities with a float sum over
// the tokens it returns (its AddonContext.cpp); the gap (a ratio of two probabilities) cancels that
// sum and is the difference of the two logits up to float rounding, whichever tokens are returned.
// Returning the whole vocabulary costs a JavaScript map of it per position (~80 ms for 151,936
// tokens), so a first pass asks for the 2048 most probable tokens, and a second pass over the
// same slices asks for the whole vocabulary only after the positions whose next token was not
// among them (N = how many; the other positions of that pass ask for the top token only, so both
// passes decode the same batches and produce the same logit rows).
const { getLlama } = await import(process.env.NODE_PATH.split(":")[0] + "/node-llama-cpp/dist/index.js");

const [model_path, ids] = process.argv.slice(2);
const tokens = ids.split(",").map(Number);
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath: model_path });
const context = await model.createContext({ contextSize: Math.max(256, tokens.length), batchSize: 256, threads: Number(process.env.NODE_LLAMA_THREADS ?? 2),
                                            flashAttention: true });
const seq = context.getSequence();
const sampling = (topK) => ({ generateNext: { probabilities: true, options: { temperature: 1, topK, topP: 1, minP: 0 } } });
const first = sampling(2048), whole = sampling(model.tokens.length ?? 1000000), top = sampling(1);

// one pass over the ids: topK(k) gives the sampling options after position k;
// returns, per position, the gap or undefined when the next token was not returned
async function pass(topK) {
    const gaps = [];
    for (let start = 0; start < tokens.length - 1; start += 32) {
        const end = Math.min(start + 32, tokens.length - 1);
        const out = await seq.controlledEvaluate(tokens.slice(start, end).map((t, k) => [t, topK(start + k)]));
        out.forEach((o, k) => {
            const probs = o.next.probabilities;
            const p = probs.get(tokens[start + k + 1]);
            let best = 0;
            for (const q of probs.values()) if (q > best) best = q;
            gaps.push(p === undefined ? undefined : Math.log(p) - Math.log(best));
        });
    }
    return gaps;
}

const gaps = await pass(() => first);
const missing = new Set(gaps.flatMap((g, k) => (g === undefined ? [k] : [])));
if (missing.size > 0) {
    await seq.clearHistory();
    const again = await pass((k) => (missing.has(k) ? whole : top));
    for (const k of missing) gaps[k] = again[k];
}
console.log(JSON.stringify({ gaps, whole: missing.size }));
await context.dispose();
await model.dispose();
await llama.dispose();
