// `warren model bench`: the engine's prefill and decode speed on this machine, beside the
// machine's own read bandwidth measured in the same run, and the memory it holds.
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "model_commands.hpp"
#include "warren/inference/model.hpp"

namespace warren::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The shortest of three passes, in seconds, of `work(t)` on `threads` threads at once (t: the
// thread's index). Each pass's results go to a sink, so that the work is not optimised away.
template <class Work>
double fastest_pass(unsigned threads, Work work) {
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<double> results(threads);
    const auto start = Clock::now();
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; ++t)
      workers.emplace_back([&, t] { results[t] = static_cast<double>(work(t)); });
    for (auto& w : workers) w.join();
    const double seconds = seconds_since(start);
    best = pass == 0 ? seconds : std::min(best, seconds);
    if (results[0] == 42) std::fputs("", stderr);
  }
  return best;
}

// The sum of `count` words, read as the kernels read weights: the widest loads the CPU has
// (64 bytes with AVX-512, 32 with AVX2), four at a time. A loop of 8-byte or 16-byte loads (what
// the compiler makes of a plain sum for the x86-64 baseline) reads a fifth to a half slower on
// these EPYCs (Zen 3 with 2 threads: 21.7 against 37 GB/s), which overstated the roofline
// fraction by as much.
__attribute__((target("avx512f"))) std::uint64_t sum_words_avx512(const std::uint64_t* words,
                                                                  std::size_t count) {
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                    _mm512_setzero_si512()};
  std::size_t i = 0;
  for (; i + 32 <= count; i += 32)
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm512_add_epi64(acc[k], _mm512_loadu_si512(words + i + 8 * k));
  std::uint64_t sum = _mm512_reduce_add_epi64(
      _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3])));
  for (; i < count; ++i) sum += words[i];
  return sum;
}

__attribute__((target("avx2"))) std::uint64_t sum_words_avx2(const std::uint64_t* words,
                                                             std::size_t count) {
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                    _mm256_setzero_si256()};
  std::size_t i = 0;
  for (; i + 16 <= count; i += 16)
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_add_epi64(
          acc[k], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + i + 4 * k)));
  std::uint64_t lanes[4];
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(lanes),
      _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3])));
  std::uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < count; ++i) sum += words[i];
  return sum;
}

std::uint64_t sum_words(const std::uint64_t* words, std::size_t count) {
  if (__builtin_cpu_supports("avx512f")) return sum_words_avx512(words, count);
  if (__builtin_cpu_supports("avx2")) return sum_words_avx2(words, count);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < count; ++i) sum += words[i];
  return sum;
}

// Bytes per second `threads` threads read from memory: the best of three passes summing 1 GiB,
// each thread its own slice. The buffer's pages are made by one MADV_POPULATE_WRITE: zeroed page
// by page, they cost seconds of faults on a paravirtualised machine.
double read_bandwidth(unsigned threads) {
  const std::size_t bytes = std::size_t{1} << 30, words = bytes / sizeof(std::uint64_t);
  void* mapped = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return 0;
  (void)madvise(mapped, bytes, MADV_POPULATE_WRITE);  // older kernels: faulted as read
  const auto* buffer = static_cast<const std::uint64_t*>(mapped);
  const double seconds = fastest_pass(threads, [&](unsigned t) {
    const std::size_t first = words * t / threads, end = words * (t + 1) / threads;
    return sum_words(buffer + first, end - first);
  });
  munmap(mapped, bytes);
  return static_cast<double>(bytes) / seconds;
}

// The BF16 dot-product peak, and the instruction that reached it.
struct BF16Peak {
  double flops;
  std::string_view instruction;
};

// 2^24 AVX-512 BF16 dot products (vdpbf16ps: 16 float lanes, each adding two products, 64
// FLOPs), twelve independent accumulators so that the instruction's latency is hidden. Each
// accumulator starts from its own value, so that no compiler may take twelve equal chains for one
// (GCC does at -O2). This EPYC issues two a cycle: 6.2 G a second a core.
__attribute__((target("avx512f,avx512bf16"))) float bf16_dots() {
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3F80);  // 1.0
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3A80);  // 2^-10: sums stay finite
  __m512 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(static_cast<float>(k));
  for (int i = 0; i < (1 << 24) / 12; ++i)
    for (__m512& x : acc) x = _mm512_dpbf16_ps(x, a, b);
  __m512 total = acc[0];
  for (int k = 1; k < 12; ++k) total = _mm512_add_ps(total, acc[k]);
  float lanes[16];
  _mm512_storeu_ps(lanes, total);
  return lanes[0];
}

// Without AVX-512 BF16 a BF16 value is the top half of a float, and the fastest BF16 dot product
// is a float FMA on widened values: 2^24 AVX2 vfmadd231ps (8 lanes, 16 FLOPs), twelve chains as
// above. Zen 3 issues two a cycle.
__attribute__((target("avx2,fma"))) float float_fmas() {
  const __m256 a = _mm256_set1_ps(1.0f), b = _mm256_set1_ps(0x1p-10f);
  __m256 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm256_set1_ps(static_cast<float>(k));
  for (int i = 0; i < (1 << 24) / 12; ++i)
    for (__m256& x : acc) x = _mm256_fmadd_ps(a, b, x);
  __m256 total = acc[0];
  for (int k = 1; k < 12; ++k) total = _mm256_add_ps(total, acc[k]);
  float lanes[8];
  _mm256_storeu_ps(lanes, total);
  return lanes[0];
}

// FLOPs a second `threads` threads reach with the CPU's fastest BF16 dot product, the best of
// three passes: AVX-512 BF16's, or else AVX2's float FMA; 0 where the CPU has neither.
BF16Peak bf16_peak(unsigned threads) {
  const double instructions = static_cast<double>((1 << 24) / 12 * 12) * threads;
  if (__builtin_cpu_supports("avx512bf16")) {
    const double seconds = fastest_pass(threads, [](unsigned) { return bf16_dots(); });
    return {instructions * 64 / seconds, "vdpbf16ps"};
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    const double seconds = fastest_pass(threads, [](unsigned) { return float_fmas(); });
    return {instructions * 16 / seconds, "vfmadd231ps"};
  }
  return {0, "none"};
}

// A line of /proc/self/status in bytes ("VmRSS", "VmHWM").
std::uint64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  return 0;
}

}  // namespace

int model_bench(const ModelFlags& f) {
  const unsigned threads =
      f.threads ? f.threads : std::max(1u, std::thread::hardware_concurrency());
  inference::EngineOptions options = engine_options(f);
  options.threads = threads;
  auto engine = inference::Engine::open(f.weights, options);
  if (!engine) return model_fail("bench", engine.error().message, 2);
  const inference::Config& c = engine->config();
  std::cerr << "warren: measuring read bandwidth (" << threads << " threads)\n";
  const double bandwidth = read_bandwidth(threads);
  std::cerr << "warren: measuring the BF16 dot-product peak (" << threads << " threads)\n";
  const BF16Peak bf16 = bf16_peak(threads);
  const double peak = bf16.flops;
  // The probe's 1 GiB is freed: the peak resident size counts from here ("5": reset VmHWM).
  std::ofstream("/proc/self/clear_refs") << "5";

  std::mt19937 rng(1);
  std::vector<std::int32_t> prompt;
  for (std::int64_t i = 0; i < f.prompt_tokens; ++i)
    prompt.push_back(static_cast<std::int32_t>(rng() % static_cast<std::uint32_t>(c.vocab_size)));
  std::cerr << "warren: prefill of " << prompt.size() << " tokens\n";
  auto sequence = engine->start();
  auto start = Clock::now();
  auto logits = engine->feed(sequence, prompt);
  if (!logits) return model_fail("bench", logits.error().message, 2);
  const double prefill_s = seconds_since(start);

  // With --sequences N, N copies of the prompted sequence decode together, a step taking one
  // token of each through the layers at once (Engine::step).
  const auto greedy = [](const std::vector<float>& l) {
    return static_cast<std::int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
  };
  std::vector<inference::Sequence> copies;
  for (std::int64_t i = 1; i < f.sequences; ++i) copies.push_back(sequence.snapshot());
  std::vector<inference::Sequence*> batch{&sequence};
  for (auto& copy : copies) batch.push_back(&copy);
  std::vector<std::vector<float>> last(batch.size(), *logits);
  std::cerr << "warren: decoding " << f.gen_tokens << " tokens"
            << (batch.size() > 1 ? " in each of " + std::to_string(batch.size()) + " sequences"
                                 : std::string())
            << "\n";
  start = Clock::now();
  for (std::int64_t i = 0; i < f.gen_tokens; ++i) {
    std::vector<std::int32_t> next;
    for (const auto& l : last) next.push_back(greedy(l));
    // The copies part ways at their first token, so that they choose experts of their own.
    if (i == 0)
      for (std::size_t k = 1; k < next.size(); ++k)
        next[k] =
            static_cast<std::int32_t>((next[k] + static_cast<std::int64_t>(k)) % c.vocab_size);
    if (batch.size() == 1) {
      auto one = engine->feed(sequence, next);
      if (!one) return model_fail("bench", one.error().message, 2);
      last[0] = std::move(*one);
    } else {
      auto all = engine->step(batch, next);
      if (!all) return model_fail("bench", all.error().message, 2);
      last = std::move(*all);
    }
  }
  const double decode_s = seconds_since(start);

  const inference::ModelInfo info = inference::describe(c);
  const double decode_rate =
      static_cast<double>(f.gen_tokens) * static_cast<double>(batch.size()) / decode_s;
  const double step_rate = static_cast<double>(f.gen_tokens) / decode_s;
  // What one decoded token reads: the active weights, and the KV cache at the middle of the run.
  const std::uint64_t kv_read = inference::kv_bytes_read(c, f.prompt_tokens + f.gen_tokens / 2);
  const double bytes_per_token = static_cast<double>(info.active_weight_bytes + kv_read);
  // A step reads at least the weights one token does: the fraction of the roofline a step reaches
  // (for one sequence, a token's).
  const double roofline = bytes_per_token * step_rate / bandwidth;
  // A prompt token's work: a multiply and an add per active weight but the head's, which only
  // the last token goes through (attention's own products, under 1% at these lengths, are left
  // out).
  const double prefill_rate = static_cast<double>(f.prompt_tokens) / prefill_s;
  const double flops_per_token =
      2.0 * static_cast<double>(info.active_parameters - info.head_parameters);
  const double prefill_flops = flops_per_token * static_cast<double>(f.prompt_tokens) +
                               2.0 * static_cast<double>(info.head_parameters);
  const double of_peak = peak > 0 ? prefill_flops / prefill_s / peak : 0;
  const nlohmann::ordered_json out = {{"weights", f.weights},
                                      {"threads", threads},
                                      {"kernels", std::string(to_string(options.kernels))},
                                      {"prompt_tokens", f.prompt_tokens},
                                      {"gen_tokens", f.gen_tokens},
                                      {"sequences", f.sequences},
                                      {"prefill_tokens_per_s", prefill_rate},
                                      {"prefill_flops_per_token", flops_per_token},
                                      {"bf16_peak_flops", peak},
                                      {"bf16_peak_instruction", std::string(bf16.instruction)},
                                      {"prefill_peak_fraction", of_peak},
                                      {"decode_tokens_per_s", decode_rate},
                                      {"decode_steps_per_s", step_rate},
                                      {"read_bandwidth_bytes_per_s", bandwidth},
                                      {"bytes_read_per_decoded_token", bytes_per_token},
                                      {"roofline_fraction", roofline},
                                      {"kv_bytes_per_token", info.kv_bytes_per_token},
                                      {"cache_bytes_held", sequence.cache_bytes()},
                                      {"resident_bytes", status_bytes("VmRSS")},
                                      {"peak_resident_bytes", status_bytes("VmHWM")},
                                      {"weights_bytes", info.file_bytes}};
  if (f.json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf(
      "prefill   %.2f tokens/s (%lld tokens); %.2f GFLOP a token; %.1f%% of the BF16 peak\n",
      prefill_rate, static_cast<long long>(f.prompt_tokens), flops_per_token / 1e9, 100 * of_peak);
  if (batch.size() == 1)
    std::printf(
        "decode    %.2f tokens/s (%lld tokens); %.1f MB read a token; %.1f%% of the roofline\n",
        decode_rate, static_cast<long long>(f.gen_tokens), bytes_per_token / 1e6, 100 * roofline);
  else
    std::printf(
        "decode    %.2f tokens/s: %.2f steps/s of %zu sequences (%lld steps); a step reads at "
        "least %.1f MB, %.1f%% of the roofline\n",
        decode_rate, step_rate, batch.size(), static_cast<long long>(f.gen_tokens),
        bytes_per_token / 1e6, 100 * roofline);
  std::printf(
      "machine   %.2f GB/s read, %.0f GFLOP/s of BF16 dot products (%s), with %u threads; the %s "
      "kernels\n",
      bandwidth / 1e9, peak / 1e9, std::string(bf16.instruction).c_str(), threads,
      std::string(to_string(options.kernels)).c_str());
  std::printf(
      "KV cache  %.0f bytes a token in the compact formats; %.1f MB held by this sequence\n",
      info.kv_bytes_per_token, static_cast<double>(sequence.cache_bytes()) / 1e6);
  std::printf("memory    %.1f MB resident (peak %.1f MB; weights %.1f MB, mapped)\n",
              static_cast<double>(status_bytes("VmRSS")) / 1e6,
              static_cast<double>(status_bytes("VmHWM")) / 1e6,
              static_cast<double>(info.file_bytes) / 1e6);
  return 0;
}

}  // namespace warren::cli
