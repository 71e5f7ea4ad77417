// The embedded engine's benchmarks (scripts/bench-tokenizer.sh runs them beside Hugging Face's
// tokenizers on the same files; figures in docs/benchmarks.md).
//   WARREN_BENCH_TOKENIZER=tokenizer.json WARREN_BENCH_TEXT=file inference_bench
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "warren/inference/model.hpp"

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Encoding on one core, in 1 MB pieces of the text (as a long prompt or a file would come),
// in bytes per second.
void BM_TokenizerEncode(benchmark::State& state) {
  const char* tokenizer_path = std::getenv("WARREN_BENCH_TOKENIZER");
  const char* text_path = std::getenv("WARREN_BENCH_TEXT");
  if (!tokenizer_path || !text_path) {
    state.SkipWithError("set WARREN_BENCH_TOKENIZER and WARREN_BENCH_TEXT");
    return;
  }
  auto tokenizer = warren::inference::Tokenizer::load(tokenizer_path);
  if (!tokenizer) {
    state.SkipWithError(tokenizer.error().message.c_str());
    return;
  }
  const std::string text = read_file(text_path);
  constexpr std::size_t kChunk = 1 << 20;
  std::size_t tokens = 0;
  for (auto _ : state) {
    tokens = 0;
    for (std::size_t i = 0; i < text.size(); i += kChunk)
      tokens += tokenizer->encode(std::string_view(text).substr(i, kChunk)).size();
    benchmark::DoNotOptimize(tokens);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}
BENCHMARK(BM_TokenizerEncode)->Unit(benchmark::kMillisecond)->MinTime(3.0);

}  // namespace

BENCHMARK_MAIN();
