// Hugging Face tokenizers' encoding speed on one core, the anchor of scripts/bench-tokenizer.sh:
// the same tokenizer.json and text as inference_bench, encoded in the same 1 MB pieces, no tokens
// added. Usage: RAYON_NUM_THREADS=1 node hf_bench.mjs TOKENIZER_JSON TEXT [SECONDS]
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");

const [tokenizerPath, textPath, seconds = "3"] = process.argv.slice(2);
const tokenizer = Tokenizer.fromFile(tokenizerPath);
const text = readFileSync(textPath);
const chunk = Number(process.env.CHUNK || (1 << 20));
const pieces = [];
// Cut at the same byte offsets as inference_bench; a cut inside a character is decoded as
// U+FFFD by both sides' readers alike only for ASCII-safe cuts, so cuts move back to a boundary.
for (let i = 0; i < text.length; ) {
  let end = Math.min(i + chunk, text.length);
  while (end < text.length && (text[end] & 0xc0) === 0x80) end--;
  pieces.push(text.subarray(i, end).toString("utf8"));
  i = end;
}
let runs = 0, tokens = 0;
const start = process.hrtime.bigint();
while (Number(process.hrtime.bigint() - start) / 1e9 < Number(seconds)) {
  tokens = 0;
  for (const p of pieces) tokens += (await tokenizer.encode(p, null, { addSpecialTokens: false })).getIds().length;
  runs++;
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ mb_per_s: (text.length * runs) / elapsed / 1e6, tokens, runs }));
