// The fast row kernels against the reference path's rows, tensor by tensor of a random
// checkpoint: every linear layer's output with the reference path (double) and with each kernel
// set this CPU runs, on a random input, quantised as the model quantises it and not; and several
// inputs at once against each alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <random>

#include "formats.hpp"
#include "kernels.hpp"
#include "safetensors.hpp"
#include "thread_pool.hpp"
#include "weights.hpp"

namespace inf = warren::inference;
namespace fs = std::filesystem;

namespace {

// The fast kernel sets this CPU runs (AVX2, AVX-512), each with its kernels.
std::vector<std::pair<inf::Kernels, const inf::RowKernels&>> runnable_sets() {
  std::vector<std::pair<inf::Kernels, const inf::RowKernels&>> sets;
  for (inf::Kernels set : {inf::Kernels::Avx2, inf::Kernels::Avx512})
    if (inf::supported(set)) sets.emplace_back(set, *inf::row_kernels(set));
  return sets;
}

class Kernels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fs::remove_all(dir());
    ASSERT_TRUE(
        inf::write_random_checkpoint(inf::preset_config(inf::Preset::Tiny), dir().string(), 3));
  }
  static void TearDownTestSuite() { fs::remove_all(dir()); }
  static fs::path dir() {
    return fs::temp_directory_path() / ("warren-kernels-" + std::to_string(getpid()));
  }
  // fn(checkpoint, name) for each linear layer the kernels take (`in` a multiple of 32).
  template <class Fn>
  static int each_linear(Fn fn) {
    auto checkpoint = inf::Checkpoint::open(dir().string());
    EXPECT_TRUE(checkpoint) << checkpoint.error().message;
    int checked = 0;
    for (const inf::TensorView& tensor : checkpoint->tensors()) {
      const std::string name(tensor.name);
      if (!name.ends_with(".weight") || tensor.shape.size() != 2) continue;
      const std::string base = name.substr(0, name.size() - 7);
      auto linear = inf::Linear::bind(*checkpoint, base);
      if (!linear || linear->in() % 32 != 0) continue;  // not a linear layer, or no kernel
      fn(*checkpoint, base, *linear);
      ++checked;
    }
    return checked;
  }
};

TEST_F(Kernels, EveryLinearLayerGivesTheReferencePathsOutput) {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;
  int heads = 0;
  const int checked = each_linear([&](const inf::Checkpoint& checkpoint, const std::string& base,
                                      const inf::Linear& reference) {
    std::vector<double> x(static_cast<std::size_t>(reference.in()));
    for (double& v : x) v = normal(rng);
    for (bool quantise : {false, true}) {
      std::vector<double> want(static_cast<std::size_t>(reference.out()));
      reference.apply(x, want, quantise);
      for (inf::Kernels kernels : {inf::Kernels::Avx2, inf::Kernels::Avx512}) {
        if (!inf::supported(kernels)) continue;
        auto fast = inf::Linear::bind(checkpoint, base, nullptr, kernels);
        ASSERT_TRUE(fast);
        std::vector<double> got(want.size());
        fast->apply(x, got, quantise);
        double diff = 0, norm = 0;
        for (std::size_t i = 0; i < want.size(); ++i) {
          diff += (got[i] - want[i]) * (got[i] - want[i]);
          norm += want[i] * want[i];
        }
        EXPECT_LE(std::sqrt(diff / norm), 1e-13)
            << base << " " << to_string(kernels) << (quantise ? " quantised" : "");
        if (base != "head" || quantise) continue;
        // The head as the engine binds it, summed in float (kernels.hpp, RowDotFloat): within a
        // millionth, and not the double sums' bits.
        fast->summed_in_float().apply(x, got, false);
        diff = 0;
        for (std::size_t i = 0; i < want.size(); ++i)
          diff += (got[i] - want[i]) * (got[i] - want[i]);
        EXPECT_LE(std::sqrt(diff / norm), 1e-6) << "head summed in float, " << to_string(kernels);
        EXPECT_GT(diff, 0.0) << "head summed in float, " << to_string(kernels);
        ++heads;
      }
    }
  });
  EXPECT_GT(checked, 20);
  EXPECT_GE(heads, 1);
}

// Each FP8 kernel decodes every e4m3 code but NaN, subnormals included, times each kind of block
// scale (the smallest, 2^-127; one; a large one; and those above 2^119, which the AVX-512 kernel
// multiplies apart), to the float formats.hpp gives: one code a row, weighed by a one-hot input.
// The scales 2^(7 - 127) and 2^(246 - 127) bound fp8_ordered's fast path.
TEST(FP8Kernels, DecodeEveryCodeAtEveryScale) {
  constexpr std::int64_t kIn = 128;
  const std::vector<double> one_hot = [] {
    std::vector<double> x(kIn, 0.0);
    x[37] = 1.0;
    return x;
  }();
  for (const auto& [set, kernels] : runnable_sets()) {
    for (int scale : {0, 1, 6, 7, 127, 200, 246, 247, 254})
      for (int code = 0; code < 256; ++code) {
        if ((code & 0x7F) == 0x7F) continue;  // NaN
        std::vector<std::uint8_t> row(kIn, 0);
        row[37] = static_cast<std::uint8_t>(code);
        const std::uint8_t scales[1] = {static_cast<std::uint8_t>(scale)};
        // Weights are floats (kernels.hpp): past 2^128 a product is infinite on every path.
        const double want = inf::formats::e4m3_to_float(row[37]) *
                            inf::formats::e8m0_to_float(static_cast<std::uint8_t>(scale));
        ASSERT_EQ(kernels.fp8(row.data(), scales, one_hot.data(), kIn), want)
            << to_string(set) << " code " << code << " scale " << scale;
        // fp8_ordered: its fast path where the code's exponent field is nonzero and the scale
        // within 2^(7 - 127) .. 2^(246 - 127), the other weights 1.0 (a normal code) times 0.
        std::vector<std::uint8_t> ones(kIn, 0x38);
        ones[37] = static_cast<std::uint8_t>(code);
        std::vector<double> ordered(kIn);
        inf::fp8_order(one_hot.data(), ordered.data(), kIn);
        ASSERT_EQ(kernels.fp8_ordered(ones.data(), scales, ordered.data(), kIn), want)
            << to_string(set) << " ordered, code " << code << " scale " << scale;
      }
  }
}

// The integer FP8 kernel weighs every e4m3 weight code against every e4m3 input code (NaNs
// aside), subnormals included, at each kind of block scale: one product a row, exactly the
// product of the two values and the scales, however the 18-bit integers split into 16-bit parts:
// the block alone, weighed in 16-bit quotients (QuantisedInput::is_narrow), and beside an input
// of 448 at a weight of 0, too wide for them where the input is under 2^-6.
TEST(FP8Kernels, QuantisedInputWeighsEveryPairOfCodesExactly) {
  namespace formats = inf::formats;
  constexpr std::int64_t kIn = 128;
  for (const auto& [set, kernels] : runnable_sets()) {
    int blocks[2] = {};  // weighed in hi and lo, in quotients
    for (int input = 0; input < 256; ++input) {
      if ((input & 0x7F) == 0x7F) continue;  // NaN
      for (int exponent : {-20, 0, 7})
        for (bool beside_448 : {false, true}) {
          std::vector<double> x(kIn, 0.0);
          x[85] = std::ldexp(formats::e4m3_to_float(static_cast<std::uint8_t>(input)), exponent);
          if (beside_448) x[3] = std::ldexp(448.0, exponent);
          inf::QuantisedInput quantised;
          inf::quantised_input(x, std::vector<int>{exponent}, quantised,
                               inf::QuantisedFor::Fp8Rows);
          ++blocks[quantised.is_narrow[0]];
          for (int scale : {0, 127, 254})
            for (int code = 0; code < 256; ++code) {
              if ((code & 0x7F) == 0x7F) continue;
              std::vector<std::uint8_t> row(kIn, 0x38);  // 1.0: weighs the zeros
              row[3] = 0;                                // +0: weighs the 448
              row[85] = static_cast<std::uint8_t>(code);
              const std::uint8_t scales[1] = {static_cast<std::uint8_t>(scale)};
              const double want = static_cast<double>(formats::e4m3_to_float(row[85])) *
                                  std::ldexp(x[85], scale - 127);
              ASSERT_EQ(kernels.fp8_quantised(row.data(), scales, quantised, kIn), want)
                  << to_string(set) << " weight code " << code << " input code " << input
                  << " scale " << scale << (beside_448 ? " beside 448" : "");
            }
        }
    }
    EXPECT_GT(blocks[0], 100);
    EXPECT_GT(blocks[1], 1000);
  }
}

// The integer FP4 kernel (and the tile kernel, a lane an input) weighs every e2m1 weight code
// against every e4m3 input code, at each of the four columns its in-lane widening keeps apart and
// at the low and the high end of the input's exponents, in a span weighed in 16-bit quotients
// (QuantisedInput::is_narrow) and in one weighed in hi and lo: one product a row, exactly. The
// other columns hold weight 0 and input 448 (the largest, whose 12-biased weighing the kernel takes
// off).
TEST(FP4Kernels, QuantisedInputWeighsEveryPairOfCodesExactly) {
  namespace formats = inf::formats;
  constexpr std::int64_t kIn = 128;
  for (const auto& [set, kernels] : runnable_sets()) {
    int spans[2] = {};  // column 85's span as the kernel weighs it: hi and lo, or narrow
    for (int column : {84, 85, 86, 87}) {
      for (int input = 0; input < 256; ++input) {
        if ((input & 0x7F) == 0x7F) continue;  // NaN
        for (int exponent : {-20, 7}) {
          std::vector<double> x(kIn, std::ldexp(448.0, exponent));
          x[static_cast<std::size_t>(column)] =
              std::ldexp(formats::e4m3_to_float(static_cast<std::uint8_t>(input)), exponent);
          inf::QuantisedInput quantised;
          inf::quantised_input(x, std::vector<int>{exponent}, quantised,
                               inf::QuantisedFor::Fp4Rows);
          ++spans[quantised.is_narrow[1]];
          const inf::QuantisedInput* one = &quantised;
          inf::QuantisedTile tile;
          inf::quantised_tile({&one, 1}, kIn, tile);
          const std::uint8_t scales[4] = {127, 127, 100, 127};  // column 85's block: 2^-27
          for (int code = 0; code < 16; ++code) {
            std::vector<std::uint8_t> row(kIn / 2, 0);  // code 0: +0
            row[static_cast<std::size_t>(column / 2)] =
                static_cast<std::uint8_t>(column % 2 ? code << 4 : code);
            const double want = static_cast<double>(formats::e2m1_table()[code]) *
                                std::ldexp(x[static_cast<std::size_t>(column)], 100 - 127);
            ASSERT_EQ(kernels.fp4_quantised(row.data(), scales, quantised, kIn), want)
                << to_string(set) << " weight code " << code << " input code " << input
                << " column " << column;
            double lane = 0;
            kernels.fp4_quantised_tile(row.data(), scales, tile, &lane);
            ASSERT_EQ(lane, want) << to_string(set) << " tile, weight code " << code
                                  << " input code " << input << " column " << column;
          }
        }
      }
    }
    // Input codes under 2^-6 beside 448 make the span too wide for 16 bits; the others, narrow.
    EXPECT_GT(spans[0], 100);
    EXPECT_GT(spans[1], 1000);
  }
}

// A prompt's tokens go through a layer together (each row read once for them all, the AVX-512
// kernels weighing several inputs at a time, tiles of inputs): each token's output is, bit for
// bit, what the layer gives it alone, with every kernel set, on one thread and on two.
TEST_F(Kernels, SeveralInputsAtOnceGiveEachTheBitsItGetsAlone) {
  std::mt19937 rng(12);
  std::normal_distribution<double> normal;
  inf::ThreadPool pool(2);
  const int checked = each_linear(
      [&](const inf::Checkpoint& checkpoint, const std::string& base, const inf::Linear& layer) {
        const auto in = static_cast<std::size_t>(layer.in()),
                   out = static_cast<std::size_t>(layer.out());
        // 29 inputs: two tiles of 12 and 5 more; groups of 4, 3, 2 and 1 within them.
        constexpr std::size_t kInputs = 29;
        std::vector<double> x(kInputs * in);
        for (double& v : x) v = normal(rng);
        for (bool quantise : {false, true})
          for (inf::Kernels kernels :
               {inf::Kernels::Reference, inf::Kernels::Avx2, inf::Kernels::Avx512}) {
            if (!inf::supported(kernels)) continue;
            for (inf::ThreadPool* threads : {static_cast<inf::ThreadPool*>(nullptr), &pool}) {
              auto linear = inf::Linear::bind(checkpoint, base, threads, kernels);
              ASSERT_TRUE(linear);
              std::vector<double> together(kInputs * out);
              linear->apply(x, together, quantise, kInputs);
              for (std::size_t t = 0; t < kInputs; ++t) {
                std::vector<double> alone(out);
                linear->apply({x.data() + t * in, in}, alone, quantise);
                ASSERT_TRUE(std::equal(alone.begin(), alone.end(), together.begin() + t * out))
                    << base << " " << to_string(kernels) << (quantise ? " quantised" : "")
                    << " input " << t << (threads ? " on 2 threads" : "");
              }
            }
          }
      });
  EXPECT_GT(checked, 20);
}

// kernels.hpp's order, written out one product at a time: lane p mod 64 adds weight p (decoded,
// times its block's scale, a float) times x[p] with one rounding, then the fixed tree. Every kernel
// set this CPU runs must give exactly this, so that a machine without AVX-512 still checks the
// order the AVX-512 kernels keep (TheAvx2AndAvx512KernelsGiveTheSameLogits needs both).
double documented_order(const std::vector<float>& weights, const std::vector<double>& x) {
  double lane[64] = {};
  for (std::size_t p = 0; p < x.size(); ++p)
    lane[p % 64] = std::fma(static_cast<double>(weights[p]), x[p], lane[p % 64]);
  for (int half = 32; half >= 1; half /= 2)
    for (int j = 0; j < half; ++j) lane[j] += lane[j + half];
  return lane[0];
}

// The float kernel's order (kernels.hpp, RowDotFloat), one product at a time: span k of each 64
// columns to accumulators 2k (columns 0-3 and 8-11 of the span) and 2k + 1 (4-7 and 12-15), in
// float; the accumulators' tree in float, then the 8 lanes in double.
double documented_order_float(const std::vector<float>& weights, const std::vector<double>& x) {
  float acc[8][8] = {};
  for (std::size_t c = 0; c < x.size(); ++c) {
    const std::size_t span = c % 64 / 16, p = c % 16;
    acc[2 * span + p / 4 % 2][p % 4 + 4 * (p / 8)] = std::fma(
        weights[c], static_cast<float>(x[c]), acc[2 * span + p / 4 % 2][p % 4 + 4 * (p / 8)]);
  }
  double lane[8];
  for (int e = 0; e < 8; ++e)
    lane[e] = ((acc[0][e] + acc[4][e]) + (acc[2][e] + acc[6][e])) +
              ((acc[1][e] + acc[5][e]) + (acc[3][e] + acc[7][e]));
  const double d[4] = {lane[0] + lane[4], lane[1] + lane[5], lane[2] + lane[6], lane[3] + lane[7]};
  return (d[0] + d[2]) + (d[1] + d[3]);
}

// The integer kernels' order (kernels.hpp): each block's products summed exactly (here in 64-bit
// integers: a weight's value over 2^-9 for FP8, over 1/2 for FP4; an input's over 2^(e - 9), e
// its 128-block's exponent), times the block's scales, added to a double: FP8 (128-column
// blocks) to the row's sum block after block; FP4 (32-column blocks, two values a byte, the even
// column low) block b to sum b mod 2, and the row's value is s0 + s1.
double documented_order_quantised(inf::DType format, const std::vector<std::uint8_t>& codes,
                                  const std::vector<std::uint8_t>& scales,
                                  const std::vector<double>& x, const std::vector<int>& exponents) {
  namespace formats = inf::formats;
  const bool fp8 = format == inf::DType::F8_E4M3;
  const std::size_t size = fp8 ? 128 : 32;
  const int weight_unit = fp8 ? -9 : -1;
  double sum[2] = {};
  for (std::size_t block = 0; block < x.size() / size; ++block) {
    const int exponent = exponents[block * size / 128];
    std::int64_t total = 0;
    for (std::size_t p = size * block; p < size * block + size; ++p) {
      const float value =
          fp8 ? formats::e4m3_to_float(codes[p])
              : formats::e2m1_table()[p % 2 ? codes[p / 2] >> 4 : codes[p / 2] & 15];
      total += static_cast<std::int64_t>(std::ldexp(value, -weight_unit)) *
               static_cast<std::int64_t>(std::ldexp(x[p], 9 - exponent));
    }
    sum[fp8 ? 0 : block % 2] += static_cast<double>(total) *
                                std::ldexp(1.0, weight_unit + exponent - 9 + scales[block] - 127);
  }
  return sum[0] + sum[1];
}

TEST(KernelOrder, EveryKernelSumsInTheDocumentedOrder) {
  namespace formats = inf::formats;
  std::mt19937 rng(21);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> byte(0, 255), scale(110, 140);
  int checked = 0;
  // Lengths with every tail the kernels have: 16, 32 and 48 columns past a multiple of 64.
  for (std::int64_t in : {128, 528, 544, 1024, 2048, 2096, 4096}) {
    std::vector<double> x(static_cast<std::size_t>(in));
    for (double& v : x) v = normal(rng);  // sums that round
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(in) * 2), scales(in / 32 + 1);
    for (auto& c : codes) {
      do c = static_cast<std::uint8_t>(byte(rng));
      while ((c & 0x7F) == 0x7F);  // NaN in e4m3
    }
    for (auto& s : scales) s = static_cast<std::uint8_t>(scale(rng));
    std::vector<float> bf16(x.size()), fp8(x.size()), fp4(x.size());
    for (std::size_t p = 0; p < x.size(); ++p) {
      bf16[p] =
          formats::bf16_to_float(static_cast<std::uint16_t>(codes[2 * p] | codes[2 * p + 1] << 8));
      fp8[p] = formats::e4m3_to_float(codes[p]) * formats::e8m0_to_float(scales[p / 128]);
      // fp4_order's layout: a 32-block's 16 even columns (low nibbles), then its 16 odd ones.
      const std::size_t block = p / 32, j = p % 32;
      const std::uint8_t packed = codes[block * 16 + j % 16];
      fp4[p] = formats::e2m1_table()[j < 16 ? packed & 0x0F : packed >> 4] *
               formats::e8m0_to_float(scales[block]);
    }
    for (const auto& [set, kernels] : runnable_sets()) {
      EXPECT_EQ(kernels.bf16(codes.data(), nullptr, x.data(), in), documented_order(bf16, x))
          << to_string(set) << " BF16, " << in << " columns";
      EXPECT_EQ(kernels.fp8(codes.data(), scales.data(), x.data(), in), documented_order(fp8, x))
          << to_string(set) << " FP8, " << in << " columns";
      std::vector<float> ordered(x.size());
      inf::float_order(x.data(), ordered.data(), in);
      EXPECT_EQ(kernels.bf16_float(codes.data(), ordered.data(), in),
                documented_order_float(bf16, x))
          << to_string(set) << " BF16 in float, " << in << " columns";
      // Several inputs at once (every group size the kernels have), each its own sum in order.
      for (int count : {2, 3, 4, 11}) {
        const std::vector<const double*> inputs(static_cast<std::size_t>(count), x.data());
        std::vector<double> several(inputs.size());
        kernels.fp8_rows(codes.data(), scales.data(), inputs.data(), count, in, several.data());
        for (double got : several) EXPECT_EQ(got, documented_order(fp8, x)) << to_string(set);
        kernels.bf16_rows(codes.data(), nullptr, inputs.data(), count, in, several.data());
        for (double got : several) EXPECT_EQ(got, documented_order(bf16, x)) << to_string(set);
      }
      if (in % 32 == 0) {
        EXPECT_EQ(kernels.fp4(codes.data(), scales.data(), x.data(), in), documented_order(fp4, x))
            << to_string(set) << " FP4, " << in << " columns";
      }
      if (in % 64 == 0) {
        // fp8_ordered, from fp8_order's layout: with these codes (one in 16 with a zero exponent
        // field: nearly every 32 columns take its slow path) and with codes whose exponent field
        // is never zero but in one 32-column span in 8 (its fast path, beside the slow one).
        std::vector<double> fp8_ordered_x(x.size());
        inf::fp8_order(x.data(), fp8_ordered_x.data(), in);
        EXPECT_EQ(kernels.fp8_ordered(codes.data(), scales.data(), fp8_ordered_x.data(), in),
                  documented_order(fp8, x))
            << to_string(set) << " FP8 ordered, " << in << " columns";
        std::vector<std::uint8_t> normal_codes(codes.begin(), codes.begin() + in);
        std::vector<float> normal_fp8(x.size());
        for (std::size_t p = 0; p < x.size(); ++p) {
          if (p % 256 >= 32 && (normal_codes[p] & 0x78) == 0) normal_codes[p] |= 0x08;
          normal_fp8[p] =
              formats::e4m3_to_float(normal_codes[p]) * formats::e8m0_to_float(scales[p / 128]);
        }
        EXPECT_EQ(kernels.fp8_ordered(normal_codes.data(), scales.data(), fp8_ordered_x.data(), in),
                  documented_order(normal_fp8, x))
            << to_string(set) << " FP8 ordered, normal codes, " << in << " columns";
      }
      if (in % 128 == 0) {  // against the input quantised as the model quantises it
        std::vector<double> rounded = x;
        std::vector<int> exponents;
        formats::round_trip_e4m3(rounded, 128, exponents);
        // Each with its narrow units found and without (every unit weighed in hi and lo).
        inf::QuantisedInput quantised, fp4_quantised, wide, fp4_wide;
        inf::quantised_input(rounded, exponents, quantised, inf::QuantisedFor::Fp8Rows);
        inf::quantised_input(rounded, exponents, fp4_quantised, inf::QuantisedFor::Fp4Rows);
        inf::quantised_input(rounded, exponents, wide, inf::QuantisedFor::Fp8Rows, false);
        inf::quantised_input(rounded, exponents, fp4_wide, inf::QuantisedFor::Fp4Rows, false);
        // Block scales 2^-24 and 2^24 at random: the row's sum spans more than a double's 53
        // bits, so that it rounds, and every block's sum reaches that rounding.
        std::vector<std::uint8_t> mixed(scales.size());
        for (auto& c : mixed) c = byte(rng) % 2 ? 103 : 151;
        const double fp8_want =
            documented_order_quantised(inf::DType::F8_E4M3, codes, mixed, rounded, exponents);
        const double fp4_want =
            documented_order_quantised(inf::DType::I8, codes, mixed, rounded, exponents);
        for (int count : {1, 2, 3, 4, 5, 11}) {
          const std::vector<const inf::QuantisedInput*> inputs(static_cast<std::size_t>(count),
                                                               &quantised);
          std::vector<double> several(inputs.size());
          kernels.fp8_quantised_rows(codes.data(), mixed.data(), inputs.data(), count, in,
                                     several.data());
          for (double got : several)
            EXPECT_EQ(got, fp8_want) << to_string(set) << " FP8 quantised, " << in << " columns";
          const std::vector<const inf::QuantisedInput*> fp4_inputs(static_cast<std::size_t>(count),
                                                                   &fp4_quantised);
          kernels.fp4_quantised_rows(codes.data(), mixed.data(), fp4_inputs.data(), count, in,
                                     several.data());
          for (double got : several)
            EXPECT_EQ(got, fp4_want) << to_string(set) << " FP4 quantised, " << in << " columns";
        }
        EXPECT_EQ(kernels.fp8_quantised(codes.data(), mixed.data(), wide, in), fp8_want)
            << to_string(set) << " FP8 quantised, no narrow units, " << in << " columns";
        EXPECT_EQ(kernels.fp4_quantised(codes.data(), mixed.data(), fp4_wide, in), fp4_want)
            << to_string(set) << " FP4 quantised, no narrow units, " << in << " columns";
        // The tile kernel, each lane its own input: input n is x times 2^n (its quantisation
        // too, exponents n higher), whose sum in the documented order is fp4_want times 2^n to
        // the bit.
        std::vector<inf::QuantisedInput> scaled(inf::kTileInputs);
        for (int n = 0; n < inf::kTileInputs; ++n) {
          std::vector<double> times(rounded);
          for (double& v : times) v = std::ldexp(v, n);
          std::vector<int> higher(exponents);
          for (int& e : higher) e += n;
          inf::quantised_input(times, higher, scaled[static_cast<std::size_t>(n)],
                               inf::QuantisedFor::Fp4Rows);
        }
        for (int count : {1, 5, 8, 9, 16}) {
          std::vector<const inf::QuantisedInput*> inputs;
          for (int n = 0; n < count; ++n) inputs.push_back(&scaled[static_cast<std::size_t>(n)]);
          inf::QuantisedTile tile;
          inf::quantised_tile(inputs, in, tile);
          std::vector<double> sums(static_cast<std::size_t>(count));
          kernels.fp4_quantised_tile(codes.data(), mixed.data(), tile, sums.data());
          for (int n = 0; n < count; ++n)
            EXPECT_EQ(sums[static_cast<std::size_t>(n)], std::ldexp(fp4_want, n))
                << to_string(set) << " FP4 tile, " << in << " columns, input " << n << " of "
                << count;
          // Two rows at once: this one and the next codes with the scales reversed, each the
          // one-row kernel's.
          std::vector<std::uint8_t> pair_scales(mixed.begin(), mixed.begin() + in / 32);
          pair_scales.insert(pair_scales.end(), pair_scales.rbegin(), pair_scales.rend());
          std::vector<double> second(static_cast<std::size_t>(count));
          kernels.fp4_quantised_tile(codes.data() + in / 2, pair_scales.data() + in / 32, tile,
                                     second.data());
          std::vector<double> pair(2 * inf::kTileInputs);
          kernels.fp4_quantised_tile_pair(codes.data(), pair_scales.data(), tile, pair.data());
          for (int n = 0; n < count; ++n) {
            EXPECT_EQ(pair[static_cast<std::size_t>(n)], sums[static_cast<std::size_t>(n)])
                << to_string(set) << " FP4 tile pair, first row, input " << n << " of " << count;
            EXPECT_EQ(pair[static_cast<std::size_t>(inf::kTileInputs + n)],
                      second[static_cast<std::size_t>(n)])
                << to_string(set) << " FP4 tile pair, second row, input " << n << " of " << count;
          }
        }
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 5);  // AVX2 at least: every x86-64 machine this project runs on has it
}

// The ordered matrix product (kernels.hpp, OrderedTile): each row's value for each input is the
// documented order's, to the bit, for groups of 1 to 4 rows and 1 to 12 inputs, and it writes
// nothing past them.
TEST(KernelOrder, TheOrderedProductGivesEachRowAndInputTheDocumentedSum) {
  namespace formats = inf::formats;
  constexpr std::int64_t kIn = 384, kChunks = kIn / 64, kStride = 6;
  std::mt19937 rng(34);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> word(0, 0xFFFF);
  std::vector<std::vector<float>> rows(inf::kBlockRows, std::vector<float>(kIn));
  std::vector<double> weights(inf::kBlockRows * kIn);  // lane by lane
  for (std::int64_t r = 0; r < inf::kBlockRows; ++r)
    for (std::int64_t p = 0; p < kIn; ++p) {
      float w;
      do w = formats::bf16_to_float(static_cast<std::uint16_t>(word(rng)));
      while (!std::isfinite(w));
      rows[r][p] = w;
      weights[(r * 64 + p % 64) * kChunks + p / 64] = w;
    }
  std::vector<std::vector<double>> x(inf::kBlockInputs, std::vector<double>(kIn));
  std::vector<double> tile(kIn * inf::kBlockInputs);
  for (std::int64_t t = 0; t < inf::kBlockInputs; ++t)
    for (std::int64_t p = 0; p < kIn; ++p) {
      x[t][p] = normal(rng);
      tile[((p % 64) * kChunks + p / 64) * inf::kBlockInputs + t] = x[t][p];
    }
  for (const auto& [set, kernels] : runnable_sets())
    for (int rows_here : {1, 2, 3, 4})
      for (int inputs : {1, 5, 12}) {
        std::vector<double> out((inf::kBlockInputs + 1) * kStride, -0.0);
        std::vector<double> group_weights(weights);
        std::fill(group_weights.begin() + rows_here * kIn, group_weights.end(), 0.0);
        kernels.ordered_tile({.weights = group_weights.data(),
                              .chunks = kChunks,
                              .rows = rows_here,
                              .out = out.data(),
                              .out_stride = kStride},
                             tile.data(), inputs);
        for (int t = 0; t <= inf::kBlockInputs; ++t)
          for (int r = 0; r < kStride; ++r) {
            const bool written = t < inputs && r < rows_here;
            EXPECT_EQ(
                std::bit_cast<std::uint64_t>(out[t * kStride + r]),
                std::bit_cast<std::uint64_t>(written ? documented_order(rows[r], x[t]) : -0.0))
                << to_string(set) << ", " << rows_here << " rows, " << inputs << " inputs: row "
                << r << ", input " << t;
          }
      }
}

// The block product (kernels.hpp, BlockPanel), driven block after block as Linear's apply_blocks
// drives it: each row's value for each input is the documented order's, to the bit, for groups of
// 1 to 4 rows and a panel of 25 inputs (two tiles and one input), and it writes nothing past
// them.
TEST(KernelOrder, TheBlockProductGivesEachRowAndInputTheDocumentedSum) {
  namespace formats = inf::formats;
  constexpr int kIn = 384, kBlocks = kIn / 128, kInputs = 25, kStride = 6;
  constexpr int kTiles = (kInputs + inf::kBlockInputs - 1) / inf::kBlockInputs;
  std::mt19937 rng(33);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::uint8_t> codes(inf::kBlockRows * kIn);
  for (auto& c : codes) {
    do c = static_cast<std::uint8_t>(byte(rng));
    while ((c & 0x7F) == 0x7F);  // NaN in e4m3
  }
  // Each row its own block scales, 2^-24 or 2^24 at random: sums that round.
  std::vector<std::vector<std::uint8_t>> scales(inf::kBlockRows,
                                                std::vector<std::uint8_t>(kBlocks));
  for (auto& row : scales)
    for (auto& c : row) c = byte(rng) % 2 ? 103 : 151;
  std::vector<inf::QuantisedInput> inputs(kInputs);
  std::vector<double> units(kBlocks * kTiles * inf::kBlockTileValues, 0.0);
  std::vector<double> input_scale(kBlocks * kTiles * inf::kBlockInputs, 0.0);
  std::vector<std::vector<double>> want(kInputs);
  for (int n = 0; n < kInputs; ++n) {
    std::vector<double> x(kIn);
    for (double& v : x) v = std::ldexp(normal(rng), n % 7 - 3);
    std::vector<int> exponents;
    formats::round_trip_e4m3(x, 128, exponents);
    inf::quantised_input(x, exponents, inputs[n], inf::QuantisedFor::Fp8Rows, false);
    for (int r = 0; r < inf::kBlockRows; ++r)
      want[n].push_back(documented_order_quantised(
          inf::DType::F8_E4M3, {codes.begin() + r * kIn, codes.begin() + (r + 1) * kIn}, scales[r],
          x, exponents));
    const int tile = n / inf::kBlockInputs, t = n % inf::kBlockInputs;
    for (int block = 0; block < kBlocks; ++block) {
      const int at = block * kTiles + tile;
      for (int k = 0; k < 128; ++k)
        units[(at * 128 + k) * inf::kBlockInputs + t] = inputs[n].units[block * 128 + k];
      input_scale[at * inf::kBlockInputs + t] = inputs[n].scale[2 * block];
    }
  }
  // -0 where nothing may be written: a kernel that adds its zeros there leaves +0.
  constexpr double kUntouched = -0.0;
  for (const auto& [set, kernels] : runnable_sets())
    for (int rows = 1; rows <= inf::kBlockRows; ++rows) {
      std::vector<double> out(kInputs * kStride + kStride, kUntouched);
      for (int n = 0; n < kInputs; ++n)
        for (int r = 0; r < rows; ++r) out[n * kStride + r] = 0;
      for (int block = 0; block < kBlocks; ++block) {
        inf::BlockGroup group{.codes = codes.data() + block * 128,
                              .row_stride = kIn,
                              .rows = rows,
                              .out = out.data(),
                              .out_stride = kStride};
        for (int r = 0; r < rows; ++r) group.factor[r] = std::ldexp(1.0, scales[r][block] - 126);
        kernels.fp8_block_panel(
            group, {.units = units.data() + block * kTiles * inf::kBlockTileValues,
                    .input_scale = input_scale.data() + block * kTiles * inf::kBlockInputs,
                    .inputs = kInputs});
      }
      for (int n = 0; n < kInputs; ++n)
        for (int r = 0; r < kStride; ++r)
          EXPECT_EQ(std::bit_cast<std::uint64_t>(out[n * kStride + r]),
                    std::bit_cast<std::uint64_t>(r < rows ? want[n][r] : kUntouched))
              << to_string(set) << ", " << rows << " rows: row " << r << ", input " << n;
      for (int r = 0; r < kStride; ++r)
        EXPECT_TRUE(std::signbit(out[kInputs * kStride + r]))
            << to_string(set) << ": past the inputs";
    }
}

}  // namespace
