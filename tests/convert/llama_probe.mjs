// Prints the prompt tokens and the top-10 next-token probabilities llama.cpp (through
// node-llama-cpp) computes for a GGUF: test_convert_node.sh compares them across files.
const {getLlama} = await import(process.env.NODE_PATH.split(":")[0] + "/node-llama-cpp/dist/index.js");
const [,, modelPath, prompt] = process.argv;
const llama = await getLlama({gpu: false, logLevel: "error", build: "never"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 256, threads: 2});
const seq = context.getSequence();
const tokens = model.tokenize(prompt, true);
const input = tokens.map((t, i) => i === tokens.length - 1 ? [t, {generateNext: {probabilities: true, options: {temperature: 1}}}] : t);
const res = await seq.controlledEvaluate(input);
const probs = res[res.length - 1].next.probabilities;
const top = [...probs.entries()].slice(0, 10).map(([t, p]) => [t, p]);
console.log(JSON.stringify({tokens: Array.from(tokens), top}));
await context.dispose(); await model.dispose(); await llama.dispose();
