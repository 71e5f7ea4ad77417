// Parse throughput on a 1 MB completion holding 1,000 tool calls: whole text, and streamed in
// 4-byte and 64-byte chunks. Goal (issue 2): >= 300 MB/s whole, >= 100 MB/s in 4-byte chunks.
#include <benchmark/benchmark.h>

#include <string>

#include "warren/toolcall/toolcall.hpp"

namespace tc = warren::toolcall;

namespace {

// A realistic agent turn: reasoning, a little content, then 1,000 calls whose arguments are code
// (quotes, newlines, '<' and backslashes that must be escaped) and a JSON value.
const std::string& completion() {
  static const std::string text = [] {
    std::string s =
        "I need to inspect the repository, then patch the parser and run the tests. "
        "The failing case is in src/parse.cc where `a < b` is compared.</think>"
        "Running the commands now.\n\n<｜DSML｜tool_calls>\n";
    const std::string code =
        "cat <<'EOF' > /workspace/src/fix.py\n"
        "def parse(line):\n"
        "    if line.startswith(\"<\") and '\\\\' in line:\n"
        "        return {\"tag\": line[1:-1], \"ok\": True}\n"
        "    return None\n"
        "EOF\n"
        "python3 -m pytest -q tests/test_parse.py -k \"not slow\" 2>&1 | tail -n 20\n";
    int i = 0;
    while (s.size() < (1u << 20) - 2000 || i < 1000) {
      if (i >= 1000) break;
      s += "<｜DSML｜invoke name=\"bash\">\n<｜DSML｜parameter name=\"command\" string=\"true\">";
      while (s.size() % 1024 > 200) s += code.substr(0, 48);
      s += code;
      s += "</｜DSML｜parameter>\n<｜DSML｜parameter name=\"options\" string=\"false\">"
           "{\"timeout\": 60, \"env\": {\"CI\": \"1\"}, \"paths\": [\"src\", \"tests\"]}"
           "</｜DSML｜parameter>\n</｜DSML｜invoke>\n";
      ++i;
    }
    s += "</｜DSML｜tool_calls><｜end▁of▁sentence｜>";
    return s;
  }();
  return text;
}

void run(benchmark::State& state, std::size_t chunk, bool lenient) {
  const std::string& text = completion();
  const auto codec = tc::make_codec(tc::Format::V4);
  tc::ParserOptions options;
  options.lenient = lenient;
  options.id_seed = 1;
  std::size_t calls = 0;
  for (auto _ : state) {
    tc::MessageBuilder sink;
    auto parser = codec->make_parser(options, sink);
    if (chunk == 0) {
      parser->feed(text);
    } else {
      const std::string_view all = text;
      for (std::size_t at = 0; at < all.size(); at += chunk) parser->feed(all.substr(at, chunk));
    }
    parser->finish();
    calls = sink.message().tool_calls.size();
    benchmark::DoNotOptimize(sink.message());
  }
  if (calls != 1000) state.SkipWithError("expected 1000 tool calls");
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.counters["bytes"] = static_cast<double>(text.size());
  state.counters["calls"] = static_cast<double>(calls);
}

void BM_ParseWhole(benchmark::State& s) {
  run(s, 0, false);
}
void BM_ParseWholeLenient(benchmark::State& s) {
  run(s, 0, true);
}
void BM_ParseStream4(benchmark::State& s) {
  run(s, 4, false);
}
void BM_ParseStream64(benchmark::State& s) {
  run(s, 64, false);
}

}  // namespace

BENCHMARK(BM_ParseWhole)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParseWholeLenient)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParseStream4)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParseStream64)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
