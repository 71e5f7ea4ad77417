// The embedded engine's benchmarks (scripts/bench-tokenizer.sh runs them beside Hugging Face's
// tokenizers on the same files; figures in docs/benchmarks.md).
//   WARREN_BENCH_TOKENIZER=tokenizer.json WARREN_BENCH_TEXT=file inference_bench
//   WARREN_BENCH_WEIGHTS=checkpoint inference_bench --benchmark_filter=Batcher
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <vector>

#include "formats.hpp"
#include "kernels.hpp"
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

namespace inf = warren::inference;

// A weight matrix of random codes for the row kernels (rows of kIn columns, every block scale 1)
// and an input of 0.5s, also quantised: what both kernel benchmarks weigh. Format (argument 0):
// 0 BF16, 1 FP8, 2 FP4, 3 FP4 against a quantised input (fp4_quantised, the MoE experts' case),
// 4 FP8 against a quantised input (fp8_quantised, the attention's and shared experts' case), 5
// BF16 summed in float (bf16_float, the head's), 6 FP8 from fp8_order's layout (fp8_ordered, a
// decoded token's wo_a), its codes' exponent fields never zero, as nearly all of a checkpoint's.
struct RandomRows {
  static constexpr std::int64_t kIn = 4096;
  RandomRows(std::int64_t format, std::size_t bytes)
      : row_bytes(format == 0 || format == 5                  ? kIn * 2
                  : format == 1 || format == 4 || format == 6 ? kIn
                                                              : kIn / 2),
        rows(static_cast<std::int64_t>(bytes) / row_bytes),
        weights(bytes),
        scales(2 * kIn / 32, 127),  // two rows' (the pair tile kernel)
        x(kIn, 0.5) {
    std::mt19937 rng(1);
    for (auto& b : weights) b = static_cast<std::uint8_t>(rng() & 0x77);  // no NaN codes
    if (format == 6)
      for (auto& b : weights) b = static_cast<std::uint8_t>(b == 0x77 ? 0x76 : b | 0x08);
    // 0.5 = 2^8 x 2^-9
    inf::quantised_input(x, std::vector<int>(kIn / 128, -8), quantised,
                         format == 3 ? inf::QuantisedFor::Fp4Rows : inf::QuantisedFor::Fp8Rows);
    inf::float_order(x.data(), ordered.data(), kIn);
    inf::fp8_order(x.data(), fp8_ordered.data(), kIn);
  }
  const std::uint8_t* row(std::int64_t r) const { return weights.data() + r * row_bytes; }
  std::int64_t row_bytes, rows;
  std::vector<std::uint8_t> weights, scales;
  std::vector<double> x;
  inf::QuantisedInput quantised;
  std::vector<float> ordered = std::vector<float>(kIn);  // x for the float kernel
  std::vector<double> fp8_ordered = std::vector<double>(kIn);
};

// The kernel set a benchmark's argument 1 names (1 AVX2, 2 AVX-512), or nullptr (and the
// benchmark skipped) where this CPU lacks it.
const inf::RowKernels* kernels_of(benchmark::State& state) {
  const auto set = state.range(1) == 1 ? inf::Kernels::Avx2 : inf::Kernels::Avx512;
  if (inf::supported(set)) return inf::row_kernels(set);
  state.SkipWithError("this CPU does not run these kernels");
  return nullptr;
}

// One row kernel on one core over a 256 MiB weight matrix of random codes (more than any cache
// holds, as a decoded token's weights are), rows of 4096 columns: weight bytes read per second.
// Arguments: the format (RandomRows) and the kernel set.
void BM_RowKernel(benchmark::State& state) {
  const inf::RowKernels* kernels = kernels_of(state);
  if (!kernels) return;
  const std::int64_t format = state.range(0);
  const RandomRows m(format, std::size_t{256} << 20);
  const auto weigh = [&](std::int64_t r) {
    const std::uint8_t* row = m.row(r);
    switch (format) {
      case 0:
        return kernels->bf16(row, nullptr, m.x.data(), m.kIn);
      case 1:
        return kernels->fp8(row, m.scales.data(), m.x.data(), m.kIn);
      case 2:
        return kernels->fp4(row, m.scales.data(), m.x.data(), m.kIn);
      case 3:
        return kernels->fp4_quantised(row, m.scales.data(), m.quantised, m.kIn);
      case 4:
        return kernels->fp8_quantised(row, m.scales.data(), m.quantised, m.kIn);
      case 5:
        return kernels->bf16_float(row, m.ordered.data(), m.kIn);
      default:
        return kernels->fp8_ordered(row, m.scales.data(), m.fp8_ordered.data(), m.kIn);
    }
  };
  for (auto _ : state) {
    double sum = 0;
    for (std::int64_t r = 0; r < m.rows; ++r) sum += weigh(r);
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * m.rows * m.row_bytes);
}
BENCHMARK(BM_RowKernel)
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6}, {1, 2}})
    ->ArgNames({"format", "kernels"})
    ->Unit(benchmark::kMillisecond);

// A prompt's case: one kernel on one core weighing `inputs` inputs a row (the rows kernels: each
// row decoded once for them all) over a 64 MiB matrix of random codes. Counter: weight-times-input
// products a second. Arguments: the format (0, 1, 3 or 4: RandomRows), the kernel set and the
// inputs.
void BM_RowKernelInputs(benchmark::State& state) {
  const inf::RowKernels* kernels = kernels_of(state);
  if (!kernels) return;
  const std::int64_t format = state.range(0);
  const int inputs = static_cast<int>(state.range(2));
  const RandomRows m(format, std::size_t{64} << 20);
  // Each input its own copy, as a prompt's tokens are: the kernel reads them all for every row.
  const std::vector<std::vector<double>> copies(static_cast<std::size_t>(inputs), m.x);
  const std::vector<inf::QuantisedInput> quantised(static_cast<std::size_t>(inputs), m.quantised);
  std::vector<const double*> xs;
  std::vector<const inf::QuantisedInput*> qs;
  for (int n = 0; n < inputs; ++n) {
    xs.push_back(copies[static_cast<std::size_t>(n)].data());
    qs.push_back(&quantised[static_cast<std::size_t>(n)]);
  }
  std::vector<double> out(static_cast<std::size_t>(inputs));
  for (auto _ : state) {
    for (std::int64_t r = 0; r < m.rows; ++r) {
      if (format == 0) kernels->bf16_rows(m.row(r), nullptr, xs.data(), inputs, m.kIn, out.data());
      if (format == 1)
        kernels->fp8_rows(m.row(r), m.scales.data(), xs.data(), inputs, m.kIn, out.data());
      if (format == 3)
        kernels->fp4_quantised_rows(m.row(r), m.scales.data(), qs.data(), inputs, m.kIn,
                                    out.data());
      if (format == 4)
        kernels->fp8_quantised_rows(m.row(r), m.scales.data(), qs.data(), inputs, m.kIn,
                                    out.data());
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.counters["products_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(m.rows * m.kIn) * inputs,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RowKernelInputs)
    ->ArgsProduct({{0, 1, 3, 4}, {1, 2}, {1, 3, 6, 12}})
    ->ArgNames({"format", "kernels", "inputs"})
    ->Unit(benchmark::kMillisecond);

// A prompt's case for the FP4 experts: the tile kernel on one core weighing up to 16 distinct
// inputs (QuantisedTile) a row against a 64 MiB matrix of random codes, as Linear weighs a prompt's
// (BM_RowKernelInputs/format:3 is the kernel it replaces there). The inputs are normal draws
// quantised as the model quantises its activations, as a prompt's are. Counter: weight-times-input
// products a second.
void BM_RowKernelTile(benchmark::State& state) {
  const inf::RowKernels* kernels = kernels_of(state);
  if (!kernels) return;
  const RandomRows m(3, std::size_t{64} << 20);
  const auto inputs = static_cast<std::size_t>(state.range(2));
  std::vector<inf::QuantisedInput> quantised(inputs);
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  for (auto& q : quantised) {
    std::vector<double> x(RandomRows::kIn);
    for (double& v : x) v = normal(rng);
    std::vector<int> exponents;
    inf::formats::round_trip_e4m3(x, 128, exponents);
    inf::quantised_input(x, exponents, q, inf::QuantisedFor::Fp4Rows);
  }
  std::vector<const inf::QuantisedInput*> qs;
  for (const auto& q : quantised) qs.push_back(&q);
  inf::QuantisedTile tile;
  inf::quantised_tile(qs, m.kIn, tile);
  std::vector<double> sums(2 * inf::kTileInputs);
  const bool pairs = state.range(3) == 2;
  for (auto _ : state) {
    for (std::int64_t r = 0; r < m.rows; r += pairs ? 2 : 1) {
      if (pairs)
        kernels->fp4_quantised_tile_pair(m.row(r), m.scales.data(), tile, sums.data());
      else
        kernels->fp4_quantised_tile(m.row(r), m.scales.data(), tile, sums.data());
      benchmark::DoNotOptimize(sums.data());
    }
  }
  state.counters["products_per_second"] =
      benchmark::Counter(static_cast<double>(state.iterations()) *
                             static_cast<double>(m.rows * m.kIn) * static_cast<double>(inputs),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RowKernelTile)  // arguments: RandomRows' format (FP4 against quantised inputs), the
                             // kernel set, the inputs in the tile and the rows a call (the one-row
                             // kernel or the pair kernel)
    ->ArgsProduct({{3}, {1, 2}, {6, 8, 12, 16}, {1, 2}})
    ->ArgNames({"format", "kernels", "inputs", "rows"})
    ->Unit(benchmark::kMillisecond);

// A prompt's case for the quantised FP8 layers: the block product (kernels.hpp, BlockPanel) on one
// core, a 64 MiB matrix of random codes against a panel of 120 distinct inputs, driven as Linear's
// apply_blocks drives it (block after block, each group of rows against the panel's ten tiles);
// BM_RowKernelInputs/format:4 is the kernel it replaces there. Counter: weight-times-input
// products a second.
void BM_BlockPanel(benchmark::State& state) {
  const inf::RowKernels* kernels = kernels_of(state);
  if (!kernels) return;
  constexpr int kInputs = 120, kTiles = kInputs / inf::kBlockInputs;
  const RandomRows m(4, std::size_t{64} << 20);
  const std::int64_t blocks = m.kIn / 128;
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  std::vector<double> units(static_cast<std::size_t>(blocks * kTiles * inf::kBlockTileValues));
  std::vector<double> scales(static_cast<std::size_t>(blocks * kTiles * inf::kBlockInputs));
  for (int n = 0; n < kInputs; ++n) {
    std::vector<double> x(RandomRows::kIn);
    for (double& v : x) v = normal(rng);
    std::vector<int> exponents;
    inf::formats::round_trip_e4m3(x, 128, exponents);
    inf::QuantisedInput q;
    inf::quantised_input(x, exponents, q, inf::QuantisedFor::Fp8Rows, false);
    inf::block_tiles_input(q, n, kTiles, m.kIn, units.data(), scales.data());
  }
  // A part's values, kBlockRows an input a group, as apply_blocks keeps them.
  std::vector<double> out(static_cast<std::size_t>(128 * kInputs), 0.0);
  constexpr std::int64_t kPartRows = 128;  // a thread's part of a 2,048-row layer (ThreadPool)
  for (auto _ : state) {
    for (std::int64_t part = 0; part < m.rows; part += kPartRows)
      for (std::int64_t block = 0; block < blocks; ++block) {
        const inf::BlockInputs panel{
            .units = units.data() + block * kTiles * inf::kBlockTileValues,
            .input_scale = scales.data() + block * kTiles * inf::kBlockInputs,
            .inputs = kInputs};
        for (std::int64_t r = part; r < part + kPartRows; r += inf::kBlockRows) {
          inf::BlockGroup group{.codes = m.row(r) + block * 128,
                                .row_stride = m.row_bytes,
                                .rows = inf::kBlockRows,
                                .factor = {0x1p-20, 0x1p-20, 0x1p-20, 0x1p-20},
                                .out = out.data() + (r - part) * kInputs,
                                .out_stride = inf::kBlockRows};
          kernels->fp8_block_panel(group, panel);
        }
      }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["products_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(m.rows * m.kIn) * kInputs,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BlockPanel)  // arguments: RandomRows' format (FP8 against quantised inputs), the set
    ->ArgsProduct({{4}, {1, 2}})
    ->ArgNames({"format", "kernels"})
    ->Unit(benchmark::kMillisecond);

// A prompt's case for the BF16 and FP8 rows against inputs of doubles: the ordered matrix product
// (kernels.hpp, OrderedTile) on one core, 512 rows of 4096 columns already decoded to doubles
// (16 MiB) against a panel of 360 distinct inputs, as Linear's apply_ordered drives it; the
// several-inputs kernels it replaces there are BM_RowKernelInputs/format:0 and 1. Counter:
// weight-times-input products a second.
void BM_OrderedTile(benchmark::State& state) {
  const inf::RowKernels* kernels = kernels_of(state);
  if (!kernels) return;
  constexpr std::int64_t kIn = RandomRows::kIn, kRows = 512, kTiles = 30;
  std::mt19937 rng(8);
  std::normal_distribution<double> normal;
  std::vector<double> weights(static_cast<std::size_t>(kRows * kIn));
  std::vector<double> x(static_cast<std::size_t>(kTiles * kIn * inf::kBlockInputs));
  for (double& w : weights) w = static_cast<float>(normal(rng));
  for (double& v : x) v = normal(rng);
  std::vector<double> out(static_cast<std::size_t>(kTiles * inf::kBlockInputs * kRows));
  for (auto _ : state) {
    for (std::int64_t r = 0; r < kRows; r += inf::kBlockRows)
      for (std::int64_t tile = 0; tile < kTiles; ++tile)
        kernels->ordered_tile({.weights = weights.data() + r * kIn,
                               .chunks = kIn / 64,
                               .rows = inf::kBlockRows,
                               .out = out.data() + tile * inf::kBlockInputs * kRows + r,
                               .out_stride = kRows},
                              x.data() + tile * kIn * inf::kBlockInputs, inf::kBlockInputs);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["products_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kRows * kIn * kTiles * inf::kBlockInputs,
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_OrderedTile)  // arguments: a format (unused: the weights are decoded), the set
    ->ArgsProduct({{0}, {1, 2}})
    ->ArgNames({"format", "kernels"})
    ->Unit(benchmark::kMillisecond);

// What one core issues: eight independent chains of one AVX2 instruction on 32-byte registers,
// in instructions a second (docs/benchmarks.md compares the kernels' instruction mixes with it),
// and a chain of dependent 64-bit adds, one a cycle: the clock under load. Argument: 0 the adds,
// then vpmaddwd, vpmaddubsw, vfmadd231pd, vpaddd, vpshufb, vpshufb with vpmaddwd alternating
// (whether they share pipes), vphaddd, and the widening and narrowing the double kernels do for
// each weight: vcvtps2pd and vpmovzxwd (16 bytes to 32), vextractf128 (32 to 16), and the first
// and the last alternating.
void BM_InstructionRate(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    state.SkipWithError("this CPU has no AVX2");
    return;
  }
#define WARREN_EIGHT(a, b)                                          \
  a " %%ymm8, %%ymm0, %%ymm0\n\t" b " %%ymm8, %%ymm1, %%ymm1\n\t" a \
    " %%ymm8, %%ymm2, %%ymm2\n\t" b " %%ymm8, %%ymm3, %%ymm3\n\t" a \
    " %%ymm8, %%ymm4, %%ymm4\n\t" b " %%ymm8, %%ymm5, %%ymm5\n\t" a \
    " %%ymm8, %%ymm6, %%ymm6\n\t" b " %%ymm8, %%ymm7, %%ymm7\n\t"
  // The widening and narrowing ones: from a 16-byte register to a 32-byte one, and back.
#define WARREN_WIDEN(a)                                                             \
  a " %%ymm0\n\t" a " %%ymm1\n\t" a " %%ymm2\n\t" a " %%ymm3\n\t" a " %%ymm4\n\t" a \
    " %%ymm5\n\t" a " %%ymm6\n\t" a " %%ymm7\n\t"
#define WARREN_NARROW(a)                                                            \
  a " %%xmm0\n\t" a " %%xmm1\n\t" a " %%xmm2\n\t" a " %%xmm3\n\t" a " %%xmm4\n\t" a \
    " %%xmm5\n\t" a " %%xmm6\n\t" a " %%xmm7\n\t"
#define WARREN_RUN(text)              \
  asm volatile(text text text text :: \
                   : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8")
  // Each loop's body is 32 of them: the loop's own compare and branch stay out of the way.
  constexpr long kLoops = 1 << 18;
  std::uint64_t chain = 0;
  const auto run = [&](auto body) {
    for (auto _ : state)
      for (long k = 0; k < kLoops; ++k) body();
  };
  switch (state.range(0)) {
    case 0:
      run([&] {
        for (int i = 0; i < 4; ++i)
          asm volatile(
              "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
              "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
              : "+r"(chain));
      });
      break;
    case 1:
      run([] { WARREN_RUN(WARREN_EIGHT("vpmaddwd", "vpmaddwd")); });
      break;
    case 2:
      run([] { WARREN_RUN(WARREN_EIGHT("vpmaddubsw", "vpmaddubsw")); });
      break;
    case 3:
      run([] { WARREN_RUN(WARREN_EIGHT("vfmadd231pd", "vfmadd231pd")); });
      break;
    case 4:
      run([] { WARREN_RUN(WARREN_EIGHT("vpaddd", "vpaddd")); });
      break;
    case 5:
      run([] { WARREN_RUN(WARREN_EIGHT("vpshufb", "vpshufb")); });
      break;
    case 6:
      run([] { WARREN_RUN(WARREN_EIGHT("vpshufb", "vpmaddwd")); });
      break;
    case 7:
      run([] { WARREN_RUN(WARREN_EIGHT("vphaddd", "vphaddd")); });
      break;
    case 8:
      run([] { WARREN_RUN(WARREN_WIDEN("vcvtps2pd %%xmm8,")); });
      break;
    case 9:
      run([] { WARREN_RUN(WARREN_WIDEN("vpmovzxwd %%xmm8,")); });
      break;
    case 10:
      run([] { WARREN_RUN(WARREN_NARROW("vextractf128 $1, %%ymm8,")); });
      break;
    default:  // vcvtps2pd and vextractf128 alternating
      run([] {
        WARREN_RUN(
            "vcvtps2pd %%xmm8, %%ymm0\n\tvextractf128 $1, %%ymm8, %%xmm1\n\t"
            "vcvtps2pd %%xmm8, %%ymm2\n\tvextractf128 $1, %%ymm8, %%xmm3\n\t"
            "vcvtps2pd %%xmm8, %%ymm4\n\tvextractf128 $1, %%ymm8, %%xmm5\n\t"
            "vcvtps2pd %%xmm8, %%ymm6\n\tvextractf128 $1, %%ymm8, %%xmm7\n\t");
      });
  }
#undef WARREN_RUN
#undef WARREN_EIGHT
#undef WARREN_WIDEN
#undef WARREN_NARROW
  benchmark::DoNotOptimize(chain);
  state.counters["per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * kLoops * 32, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_InstructionRate)->DenseRange(0, 11)->ArgName("instruction");

// Concurrent generations through a Batcher on 2 threads, against the same generations one after
// another (generate() alone), in generated tokens per second: each request a 16-token prompt of
// its own and 32 greedy tokens. Arguments: requests, and 0 (one after another) or 1 (a Batcher).
// The checkpoint: WARREN_BENCH_WEIGHTS, or a tiny random one written to a temporary folder.
void BM_Batcher(benchmark::State& state) {
  static const std::string weights = [] {
    if (const char* dir = std::getenv("WARREN_BENCH_WEIGHTS")) return std::string(dir);
    const std::string dir = "/tmp/warren-bench-batcher-" + std::to_string(getpid());
    std::filesystem::remove_all(dir);
    (void)inf::write_random_checkpoint(inf::preset_config(inf::Preset::Tiny), dir, 3);
    return dir;
  }();
  auto opened = inf::Engine::open(weights, {.threads = 2});
  if (!opened) {
    state.SkipWithError(opened.error().message.c_str());
    return;
  }
  auto engine = std::make_shared<const inf::Engine>(std::move(*opened));
  const auto count = static_cast<std::size_t>(state.range(0));
  const bool batched = state.range(1) == 1;
  std::vector<inf::Batcher::Request> requests(count);
  std::mt19937 rng(1);
  for (auto& r : requests) {
    for (int i = 0; i < 16; ++i)
      r.prompt.push_back(static_cast<std::int32_t>(rng() % engine->config().vocab_size));
    r.options.max_tokens = 32;
  }
  inf::Batcher batcher(engine);
  std::size_t tokens = 0;
  for (auto _ : state) {
    if (batched) {
      for (auto& result : batcher.submit(requests)) tokens += result.get()->tokens.size();
    } else {
      for (const auto& r : requests) {
        auto sequence = engine->start();
        tokens += inf::generate(*engine, sequence, r.prompt, r.options)->tokens.size();
      }
    }
  }
  state.counters["tokens"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Batcher)
    ->ArgsProduct({{1, 4, 8}, {0, 1}})
    ->ArgNames({"requests", "batched"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
