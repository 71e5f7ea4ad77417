// The number formats against exhaustive tables: every e4m3, e2m1, e8m0 and BF16 code, with values
// computed here by a formula of their own, and the rounding at every midpoint.
#include "formats.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace f = warren::inference::formats;

namespace {

// e4m3fn's positive value of `code` (0..126): subnormals are code * 2^-9, normals
// (8 + mantissa) * 2^(exponent - 10).
double e4m3_value(unsigned code) {
  if (code < 8) return code * std::ldexp(1.0, -9);
  return (8 + (code & 7)) * std::ldexp(1.0, static_cast<int>(code >> 3) - 10);
}

}  // namespace

TEST(Formats, EveryE4m3CodeDecodesToItsValueAndBack) {
  for (unsigned code = 0; code < 256; ++code) {
    const auto c = static_cast<std::uint8_t>(code);
    if ((code & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(f::e4m3_to_float(c))) << code;
      EXPECT_EQ(f::float_to_e4m3(f::e4m3_to_float(c)) & 0x7F, 0x7F) << code;
      continue;
    }
    const double expected = (code & 0x80 ? -1 : 1) * e4m3_value(code & 0x7F);
    EXPECT_EQ(f::e4m3_to_float(c), static_cast<float>(expected)) << code;
    EXPECT_EQ(f::float_to_e4m3(f::e4m3_to_float(c)), c) << code;
    EXPECT_EQ(f::e4m3_table()[code], static_cast<float>(expected)) << code;
  }
  EXPECT_EQ(f::e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(f::e4m3_to_float(0x38), 1.0f);
  EXPECT_EQ(f::e4m3_to_float(0x01), std::ldexp(1.0f, -9));
}

TEST(Formats, E4m3RoundsToNearestEvenAndSaturates) {
  for (unsigned code = 0; code < 0x7E; ++code) {
    const double low = e4m3_value(code), high = e4m3_value(code + 1), mid = (low + high) / 2;
    const unsigned even = code % 2 == 0 ? code : code + 1;
    EXPECT_EQ(f::float_to_e4m3(static_cast<float>(mid)), even) << code;
    EXPECT_EQ(f::float_to_e4m3(-static_cast<float>(mid)), 0x80 | even) << code;
    EXPECT_EQ(f::float_to_e4m3(std::nextafter(static_cast<float>(mid), 0.0f)), code) << code;
    EXPECT_EQ(f::float_to_e4m3(std::nextafter(static_cast<float>(mid), 1e9f)), code + 1) << code;
  }
  EXPECT_EQ(f::float_to_e4m3(449.0f), 0x7E);
  EXPECT_EQ(f::float_to_e4m3(1e30f), 0x7E);
  EXPECT_EQ(f::float_to_e4m3(-1e30f), 0xFE);
  EXPECT_EQ(f::float_to_e4m3(std::ldexp(1.0f, -11)), 0x00);  // below half the smallest: zero
}

TEST(Formats, EveryE2m1CodeAndItsMidpoints) {
  const float values[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (unsigned code = 0; code < 16; ++code) {
    const float expected = (code & 8 ? -1.0f : 1.0f) * values[code & 7];
    EXPECT_EQ(f::e2m1_to_float(static_cast<std::uint8_t>(code)), expected) << code;
    EXPECT_EQ(f::e2m1_table()[code], expected) << code;
    if (code != 8) {  // -0.0f: below, by its sign
      EXPECT_EQ(f::float_to_e2m1(expected), code) << code;
    }
  }
  EXPECT_EQ(f::float_to_e2m1(-0.0f), 8);
  // Midpoints go to the even code: 0.25 -> 0, 0.75 -> 1 (code 2), 1.25 -> 1, 1.75 -> 2 (code 4),
  // 2.5 -> 2, 3.5 -> 4 (code 6), 5 -> 4; beyond 6 saturates.
  const std::pair<float, unsigned> rounding[] = {{0.25f, 0},  {0.75f, 2}, {1.25f, 2}, {1.75f, 4},
                                                 {2.5f, 4},   {3.5f, 6},  {5.0f, 6},  {7.0f, 7},
                                                 {100.0f, 7}, {0.26f, 1}, {5.01f, 7}};
  for (const auto& [value, code] : rounding) {
    EXPECT_EQ(f::float_to_e2m1(value), code) << value;
    EXPECT_EQ(f::float_to_e2m1(-value), 8 | code) << value;
  }
}

TEST(Formats, EveryE8m0CodeIsAPowerOfTwo) {
  for (unsigned code = 0; code < 255; ++code)
    EXPECT_EQ(f::e8m0_to_float(static_cast<std::uint8_t>(code)),
              std::ldexp(1.0f, static_cast<int>(code) - 127))
        << code;
  EXPECT_TRUE(std::isnan(f::e8m0_to_float(255)));
  EXPECT_EQ(f::e8m0_of_exponent(0), 127);
  EXPECT_EQ(f::e8m0_of_exponent(-200), 0);
  EXPECT_EQ(f::e8m0_of_exponent(200), 254);
}

TEST(Formats, EveryBf16CodeRoundTripsAndFloatsRoundToNearestEven) {
  for (unsigned code = 0; code < 65536; ++code) {
    const auto c = static_cast<std::uint16_t>(code);
    const float value = f::bf16_to_float(c);
    if (std::isnan(value)) continue;
    EXPECT_EQ(f::float_to_bf16(value), c) << code;
  }
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to the even one, 1.
  EXPECT_EQ(f::bf16_to_float(f::float_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(f::bf16_to_float(f::float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))),
            1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(f::bf16_to_float(f::float_to_bf16(NAN))));
}

TEST(Formats, BlockScalesArePowersOfTwoFromTheBlocksLargestValue) {
  const std::vector<float> at_max = {448.0f, -3.0f}, above = {-449.0f, 1.0f}, zeros = {0.0f, 0.0f};
  EXPECT_EQ(f::block_scale_exponent(at_max, f::kE4m3Max), 0);
  EXPECT_EQ(f::block_scale_exponent(above, f::kE4m3Max), 1);
  // amax floored at 1e-4: ceil(log2(1e-4 / 448)) = ceil(-22.09).
  EXPECT_EQ(f::block_scale_exponent(zeros, f::kE4m3Max), -22);
  EXPECT_EQ(f::block_scale_exponent(at_max, f::kE2m1Max), 7);  // 448 / 6 = 74.7 -> 2^7
}

TEST(Formats, RoundTripsQuantiseEachBlockWithItsOwnScale) {
  // Two blocks of 4: the first's amax is 896 (scale 2), the second's 3 (scale 2^-7).
  std::vector<float> v = {896.0f, 1.0f, 3.3f, -17.0f, 3.0f, 0.01f, -1.5f, 0.123f};
  f::round_trip_e4m3(v, 4);
  EXPECT_EQ(v[0], 896.0f);
  EXPECT_EQ(v[1], 1.0f);          // 0.5 in e4m3, times 2
  EXPECT_EQ(v[2], 3.25f);         // 1.65 -> 1.625, times 2
  EXPECT_EQ(v[3], -16.0f);        // -8.5 -> -8 (ties to even), times 2
  EXPECT_EQ(v[4], 3.0f);          // 384, exact
  EXPECT_EQ(v[5], 0.009765625f);  // 1.28 -> 1.25, times 2^-7
  EXPECT_EQ(v[6], -1.5f);
  EXPECT_EQ(v[7], 0.125f);                           // 15.744 -> 16, times 2^-7
  std::vector<float> w = {6.0f, 2.4f, -0.7f, 0.2f};  // amax 6: scale 1
  f::round_trip_e2m1(w, 4);
  EXPECT_EQ(w, (std::vector<float>{6.0f, 2.0f, -0.5f, 0.0f}));
}

// The activations' round trip in double (bit arithmetic, no call per value) gives what rounding
// each value by its code gives: every e4m3 value, every midpoint between neighbours and a value
// on either side of it, subnormals, zeros of both signs and random values, in blocks whose scales
// run from 2^-22 (the floor of an all-zero block) to 2^40.
TEST(Formats, TheDoubleRoundTripRoundsAsTheCodesDo) {
  std::vector<double> values;
  for (int scale : {-22, -9, 0, 3, 40}) {
    const double s = std::ldexp(1.0, scale);
    std::vector<double> block = {448 * s};  // the block's largest: its scale is 2^scale
    for (unsigned code = 0; code < 126; ++code) {
      const double low = e4m3_value(code), mid = (low + e4m3_value(code + 1)) / 2;
      for (double v : {low, mid, std::nextafter(mid, 0.0), std::nextafter(mid, 1e9)})
        for (double sign : {1.0, -1.0}) block.push_back(sign * v * s);
    }
    block.push_back(-0.0);
    block.resize(1024, 0.0);
    values.insert(values.end(), block.begin(), block.end());
  }
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  for (int i = 0; i < 128 * 64; ++i) values.push_back(normal(rng) * std::ldexp(1.0, i / 128 - 32));
  std::vector<double> fast = values, by_codes = values;
  std::vector<int> exponents;
  f::round_trip_e4m3(fast, 128, exponents);
  f::round_trip_e4m3_by_codes(by_codes, 128);
  ASSERT_EQ(exponents.size(), values.size() / 128);
  EXPECT_EQ(exponents[0], -22 + 0);  // 448 x 2^-22 / 448
  for (std::size_t i = 0; i < values.size(); ++i)
    ASSERT_EQ(std::bit_cast<std::uint64_t>(fast[i]), std::bit_cast<std::uint64_t>(by_codes[i]))
        << "value " << i << ": " << values[i] << " -> " << fast[i] << ", by its code "
        << by_codes[i];
}
