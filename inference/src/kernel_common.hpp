// What the kernel files (kernels.cpp, integer_kernels.cpp, ...) share: the instruction sets they
// are compiled for, one function at a time (the rest of the engine is built for plain x86-64;
// kernels.cpp picks a set at run time), and the AVX2 e4m3 decoder. A declaration carries its
// definition's target: GCC takes two differing targets for two versions of one function.
#pragma once

#include <immintrin.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels.hpp"

#define WARREN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
// The AVX-512 set's integer kernels where the CPU also has VNNI (kernels.cpp checks it). F16C,
// which AVX-512 does not imply in GCC, makes WARREN_AVX2's helpers a subset of it, so that they
// inline.
#define WARREN_AVX512_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))
#define WARREN_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace warren::inference {

// e8m0 to float by its bits: 2^(code - 127) is the exponent field alone, except 2^-127, a
// subnormal (formats.hpp's e8m0_to_float, without its call: one a block of 32 weights cost the
// FP4 kernel a sixth of its time).
inline float e8m0(std::uint8_t code) {
  return code == 0 ? 0x1p-127f : std::bit_cast<float>(static_cast<std::uint32_t>(code) << 23);
}

// --- e2m1 for the integer kernels (integer_kernels.cpp, integer_kernels_avx512.cpp) -----------
// e2m1's values times 2, signed: integers, so that a product with the input's is one.
constexpr std::int8_t kE2m1Twice[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// e2m1's integers plus 12 (kE2m1Twice + 12, in [0, 24]): never negative, so that a byte of
// them widens to a 16-bit word in-lane, by a mask or a shift (QuantisedInput::bias takes the 12
// off). vpmovsxbw, the signed widening, is two operations on Zen 3 on the pipes that vpshufb and
// vextracti128 need too.
constexpr std::int8_t kE2m1Biased[16] = {12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};

// By a byte of an FP4 row: its two columns' integers k (kE2m1Twice) as 16-bit words, the even
// column's low.
struct E2m1Pairs {
  std::int32_t k[256];
  constexpr E2m1Pairs() : k() {
    for (int byte = 0; byte < 256; ++byte)
      k[byte] = static_cast<std::int32_t>(
          static_cast<std::uint32_t>(static_cast<std::uint16_t>(kE2m1Twice[byte & 15])) |
          static_cast<std::uint32_t>(static_cast<std::uint16_t>(kE2m1Twice[byte >> 4])) << 16);
  }
};
inline constexpr E2m1Pairs kE2m1Pairs;

// An e8m0 code's 2^(code - 127) as a double, by its exponent bits (every code but 255, NaN, is a
// normal double).
inline double e8m0_double(std::uint8_t code) {
  return std::bit_cast<double>(static_cast<std::uint64_t>(code + 1023 - 127) << 52);
}

// The kernels for several inputs take up to three a pass: `pass(std::integral_constant<int, N>,
// first)` for N inputs from `first`, over `count` inputs.
template <class Pass>
inline void in_threes(int count, Pass pass) {
  int n = 0;
  for (; n + 3 <= count; n += 3) pass(std::integral_constant<int, 3>{}, n);
  if (count - n == 2) pass(std::integral_constant<int, 2>{}, n);
  if (count - n == 1) pass(std::integral_constant<int, 1>{}, n);
}

}  // namespace warren::inference

// e4m3_16_half_avx512's decoding, 8 codes at a time: each code shifted to the top of its 16-bit
// lane and back by one, arithmetically, puts the sign at bit 15 (and a copy at 14, masked off) and
// the magnitude at bits 13..7: the code's value times 2^-8 as a half, widened exactly by F16C.
// Through a float's bits instead (a float whose exponent field is e4m3's, scaled by 2^120), one
// code in eight made a subnormal float, and Zen 3 multiplies those slowly: 1.7 GB/s a core.
WARREN_AVX2 inline __m256 e4m3_8_half_avx2(const std::uint8_t* codes) {
  const __m128i v = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes)));
  const __m128i moved = _mm_srai_epi16(_mm_slli_epi16(v, 8), 1);
  return _mm256_cvtph_ps(_mm_and_si128(moved, _mm_set1_epi16(static_cast<short>(0xBF80))));
}

// e4m3_8_half_avx2's halves (codes times 2^-8) times the block scale 2^(code - 127), in float
// (one rounding: the product of two floats). Past code 246, 2^(code - 119) is no float: the 2^8
// goes first.
WARREN_AVX2 inline __m256 e4m3_scaled_avx2(__m256 halves, std::uint8_t code) {
  using warren::inference::e8m0;
  if (code <= 246) return _mm256_mul_ps(halves, _mm256_set1_ps(e8m0(code + 8)));
  return _mm256_mul_ps(_mm256_mul_ps(halves, _mm256_set1_ps(0x1p8f)), _mm256_set1_ps(e8m0(code)));
}

// The FP4 one-input kernels' tail for a 128-column group (QuantisedInput, Fp4Rows): its four
// 32-blocks' integer totals (the bias not yet taken off), times their e8m0 codes `codes` as
// doubles (by their exponent bits: e8m0_double) and the input's block scales, added to the sums
// `sum`, block b to lane b mod 2, blocks 0 and 1 first: kernels.hpp's order, one rounding each.
WARREN_AVX2 inline __m128d add_fp4_group(__m128d sum, __m128i totals,
                                         const warren::inference::QuantisedInput& x,
                                         std::int64_t group, const std::uint8_t* codes) {
  std::uint32_t four;
  std::memcpy(&four, codes, 4);
  const __m256d weight = _mm256_castsi256_pd(_mm256_slli_epi64(
      _mm256_add_epi64(_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(static_cast<int>(four))),
                       _mm256_set1_epi64x(1023 - 127)),
      52));
  totals = _mm_sub_epi32(
      totals, _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.bias.data() + 4 * group)));
  const __m256d scaled = _mm256_mul_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(totals), weight),
                                       _mm256_loadu_pd(x.block_scale.data() + 4 * group));
  return _mm_add_pd(_mm_add_pd(sum, _mm256_castpd256_pd128(scaled)),
                    _mm256_extractf128_pd(scaled, 1));
}

// v[0] + v[1] + v[2] + v[3] as (v0 + v2) + (v1 + v3): the last two rounds of the kernels' trees,
// exact in the integer kernels, whose lanes hold integers under 2^53.
WARREN_AVX2 inline double sum4(__m256d v) {
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

namespace warren::inference {

// An FP8 row against an input of doubles in fp8_order's layout (kernels.hpp), `in` a multiple of
// 64: fp8_row_avx2's value, to the bit, without conversions (ordered_kernels.cpp). Both sets run
// it.
struct BlockGroup;
struct BlockInputs;
struct OrderedGroup;
// kernels.hpp's BlockPanel and OrderedTile (product_kernels.cpp). Both sets run them: an exact sum
// has no lanes, and the ordered one keeps the AVX-512 kernels' 64.
WARREN_AVX2 void fp8_block_panel_avx2(const BlockGroup& group, const BlockInputs& panel);
WARREN_AVX2 void ordered_tile_avx2(const OrderedGroup& group, const double* x, int inputs);
// kernels.hpp's KeyDots and KeySums (product_kernels.cpp). Both sets run them.
WARREN_AVX2 void key_dots_avx2(const float* keys, std::int64_t n, std::int64_t d, const double* q,
                               int heads, double* logits);
WARREN_AVX2 void key_sums_avx2(const float* keys, std::int64_t n, std::int64_t d, const double* p,
                               int heads, double* sum);

WARREN_AVX2 double fp8_ordered_row_avx2(const void* row, const std::uint8_t* scales,
                                        const double* x, std::int64_t in);

}  // namespace warren::inference
