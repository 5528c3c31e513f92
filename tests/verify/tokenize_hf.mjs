// Tokenizes with Hugging Face tokenizers' own Rust implementation (@anush008/tokenizers),
// without special tokens (no BOS/EOS from the post-processor).
//   node tokenize_hf.mjs tokenizer.json --file TEXT OUT.bin      (int32 LE ids)
//   node tokenize_hf.mjs tokenizer.json --json STRINGS.json      (prints [[ids...], ...])
import { createRequire } from "module";
import fs from "fs";
const require = createRequire(process.env.NODE_PATH.split(":")[0] + "/");
const { Tokenizer } = require("@anush008/tokenizers");
const [tok, mode, input, out] = process.argv.slice(2);
const t = Tokenizer.fromFile(tok);
const ids = async s => Array.from((await t.encode(s, null, { addSpecialTokens: false })).getIds());
if (mode === "--file") {
    fs.writeFileSync(out, Buffer.from(new Int32Array(await ids(fs.readFileSync(input, "utf8"))).buffer));
} else {
    const strings = JSON.parse(fs.readFileSync(input, "utf8"));
    const res = [];
    for (const s of strings) res.push(await ids(s));
    console.log(JSON.stringify(res));
}
