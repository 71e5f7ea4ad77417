// The matrix-product kernels (kernels.hpp: BlockPanel, OrderedTile, KeyDots and KeySums) against
// the documented orders written out one product at a time, bit for bit, and what they must not
// write. Linear's use of them (a prompt's tokens together, each getting the bits it gets alone)
// is kernels_test.cpp's SeveralInputsAtOnceGiveEachTheBitsItGetsAlone.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "documented_orders.hpp"
#include "formats.hpp"
#include "kernels.hpp"

namespace inf = warren::inference;
using namespace warren::inference::testing;

namespace {

// Attention's products (kernels.hpp, KeyDots and KeySums) written out one product at a time, for
// 1 to 4 heads: each logit in 8 lanes and the fixed tree, each sum in key order, bit for bit.
TEST(KernelOrder, AttentionsProductsSumInTheDocumentedOrder) {
  constexpr std::int64_t kKeys = 37, kDim = 136;
  std::mt19937 rng(35);
  std::normal_distribution<double> normal;
  std::vector<float> keys(kKeys * kDim);
  for (float& k : keys) k = static_cast<float>(normal(rng));
  std::vector<double> q(inf::kKeyHeads * kDim), p(inf::kKeyHeads * kKeys);
  for (double& v : q) v = normal(rng);
  for (double& v : p) v = std::abs(normal(rng));
  for (const auto& [set, kernels] : runnable_sets())
    for (int heads = 1; heads <= inf::kKeyHeads; ++heads) {
      std::vector<double> logits(heads * kKeys), sums(heads * kDim);
      kernels.key_dots(keys.data(), kKeys, kDim, q.data(), heads, logits.data());
      kernels.key_sums(keys.data(), kKeys, kDim, p.data(), heads, sums.data());
      for (int h = 0; h < heads; ++h) {
        for (std::int64_t j = 0; j < kKeys; ++j) {
          double l[8] = {};
          for (std::int64_t i = 0; i < kDim; ++i)
            l[i % 8] = std::fma(static_cast<double>(keys[j * kDim + i]), q[h * kDim + i], l[i % 8]);
          EXPECT_EQ(logits[h * kKeys + j],
                    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])))
              << to_string(set) << ", " << heads << " heads: head " << h << ", key " << j;
        }
        for (std::int64_t i = 0; i < kDim; ++i) {
          double sum = 0;
          for (std::int64_t j = 0; j < kKeys; ++j)
            sum = std::fma(p[h * kKeys + j], static_cast<double>(keys[j * kDim + i]), sum);
          EXPECT_EQ(sums[h * kDim + i], sum)
              << to_string(set) << ", " << heads << " heads: head " << h << ", dimension " << i;
        }
      }
    }
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
  for (std::int64_t t = 0; t < inf::kBlockInputs; ++t) {
    for (double& v : x[t]) v = normal(rng);
    inf::ordered_tiles_input(x[t].data(), t, kIn, tile.data());
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
    inf::block_tiles_input(inputs[n], n, kTiles, kIn, units.data(), input_scale.data());
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
