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

#include "documented_orders.hpp"
#include "formats.hpp"
#include "kernels.hpp"
#include "safetensors.hpp"
#include "thread_pool.hpp"
#include "weights.hpp"

namespace inf = warren::inference;
namespace fs = std::filesystem;
using namespace warren::inference::testing;

namespace {

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
      // In float the random codes' largest values (up to 2^127) overflow the sums to infinities
      // of both signs, and NaN equals nothing: their exponents are kept under 2^48 here.
      std::vector<std::uint8_t> float_codes = codes;
      std::vector<float> float_bf16(x.size());
      for (std::size_t p = 0; p < x.size(); ++p) {
        std::uint8_t& high = float_codes[2 * p + 1];
        high = static_cast<std::uint8_t>((high & 0x80) | (high & 0x7F) % 0x58);
        float_bf16[p] = formats::bf16_to_float(
            static_cast<std::uint16_t>(float_codes[2 * p] | float_codes[2 * p + 1] << 8));
      }
      std::vector<float> ordered(x.size());
      inf::float_order(x.data(), ordered.data(), in);
      EXPECT_EQ(kernels.bf16_float(float_codes.data(), ordered.data(), in),
                documented_order_float(float_bf16, x))
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

}  // namespace
