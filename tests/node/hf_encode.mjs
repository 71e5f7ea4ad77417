// Encodes texts with Hugging Face's tokenizers, for tests/inference/tokenizer_test.cpp to compare:
// `tokenizers` (the Rust library's Node binding, the reference) and `@huggingface/tokenizers`
// (the JavaScript port). Usage: node hf_encode.mjs TOKENIZER_JSON TEXTS_JSON
// prints {"rust": [[ids]...], "js": [[ids]...]}, one array per text, no tokens added.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Tokenizer as JsTokenizer } from "@huggingface/tokenizers";

const require = createRequire(import.meta.url);
const { Tokenizer: RustTokenizer } = require("tokenizers");

const [tokenizerPath, textsPath] = process.argv.slice(2);
const texts = JSON.parse(readFileSync(textsPath, "utf8"));
const rust = RustTokenizer.fromFile(tokenizerPath);
const js = new JsTokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")), {});
const out = { rust: [], js: [] };
for (const text of texts) {
  out.rust.push(Array.from((await rust.encode(text, null, { addSpecialTokens: false })).getIds()));
  out.js.push(js.encode(text, { add_special_tokens: false }).ids);
}
process.stdout.write(JSON.stringify(out));
