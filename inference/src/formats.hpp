// The number formats of DeepSeek-V4 checkpoints and of the values the reference quantises at run
// time: BF16, FP8 e4m3 (the "fn" variant: no infinities, one NaN code per sign), FP4 e2m1 and
// the e8m0 power-of-two scales (OCP Microscaling Formats v1.0, sections 5.3 and 5.4). Conversions
// round to nearest, ties to even, as PyTorch's casts do; quantisers that make a value out of
// range saturate it (the block scales keep every value in range, so saturation only ever
// touches values a scale already made <= the maximum).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace warren::inference::formats {

// BF16: the upper half of an IEEE binary32.
float bf16_to_float(std::uint16_t bits);
std::uint16_t float_to_bf16(float value);  // round to nearest even; NaN stays a (quiet) NaN

// FP8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; S.1111.111 is NaN, max 448.
constexpr float kE4m3Max = 448.0f;
float e4m3_to_float(std::uint8_t code);
std::uint8_t float_to_e4m3(float value);    // round to nearest even, saturating at +-448
std::uint8_t double_to_e4m3(double value);  // the same from a double, with one rounding

// FP4 e2m1: 1 sign, 2 exponent (bias 1), 1 mantissa bit: 0, 0.5, 1, 1.5, 2, 3, 4, 6.
constexpr float kE2m1Max = 6.0f;
float e2m1_to_float(std::uint8_t code);     // the low 4 bits
std::uint8_t float_to_e2m1(float value);    // round to nearest even, saturating at +-6
std::uint8_t double_to_e2m1(double value);  // the same from a double, with one rounding

// e8m0: an unsigned biased exponent, 2^(code - 127); 255 is NaN.
float e8m0_to_float(std::uint8_t code);
// The code of 2^exponent, exponent clamped to e8m0's range [-127, 127].
std::uint8_t e8m0_of_exponent(int exponent);

// The power-of-two scale the reference gives a block of values before casting it to a format
// whose largest value is `format_max`: 2^ceil(log2(amax / format_max)), amax floored at 1e-4 so
// that an all-zero block gets a finite scale (v4-architecture.md, "Numerics").
int block_scale_exponent(std::span<const float> block, float format_max);
// The same in double (the reference path's activations).
int block_scale_exponent(std::span<const double> block, double format_max);

// Quantise-and-dequantise, in place: each block of `block` values is scaled, cast to the format
// and back, and scaled again. This is what the reference does to activations before FP8 matmuls
// (blocks of 128), to the no-RoPE dims of KV rows (blocks of 64, e4m3) and to indexer keys and
// queries (blocks of 32, e2m1). `values.size()` must be a multiple of `block`.
void round_trip_e4m3(std::span<float> values, std::size_t block);
void round_trip_e2m1(std::span<float> values, std::size_t block);
// The same in double (the reference path's activations): the scale computed in double.
void round_trip_e4m3(std::span<double> values, std::size_t block);
// The same, saying each block's scale: 2^exponents[b].
void round_trip_e4m3(std::span<double> values, std::size_t block, std::vector<int>& exponents);
// The same by way of each value's code (float_to_e4m3's rounding, then e4m3_to_float): what the
// fast round trip above is tested against.
void round_trip_e4m3_by_codes(std::span<double> values, std::size_t block);
void round_trip_e2m1(std::span<double> values, std::size_t block);

// Decoding tables, for kernels that look codes up instead of converting them.
const std::array<float, 256>& e4m3_table();
const std::array<float, 16>& e2m1_table();

}  // namespace warren::inference::formats
