#include "kernels.hpp"

#include "integer_kernels.hpp"

// GCC 12's avx512fintrin.h warns that its own _mm512_undefined values may be used uninitialised
// (the casts and extracts below start from them by design).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "formats.hpp"

namespace warren::inference {

namespace {

// --- AVX-512 (F, BW, VL, DQ) ----------------------------------------------------------------
// The 64 lanes are eight vectors of 8 doubles, acc[k] holding lanes 8k .. 8k+7: eight independent
// chains of fused multiply-adds, so that their latency is hidden.

// (j, j+32), (j, j+16), (j, j+8), (j, j+4), (j, j+2), (j, j+1): kernels.hpp's tree.
WARREN_AVX512 inline double reduce64(const __m512d (&acc)[8]) {
  const __m512d t0 = _mm512_add_pd(acc[0], acc[4]), t1 = _mm512_add_pd(acc[1], acc[5]),
                t2 = _mm512_add_pd(acc[2], acc[6]), t3 = _mm512_add_pd(acc[3], acc[7]);
  const __m512d s8 = _mm512_add_pd(_mm512_add_pd(t0, t2), _mm512_add_pd(t1, t3));
  const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s8), _mm512_extractf64x4_pd(s8, 1));
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

// For each of the N inputs x[n], lanes 16G .. 16G+15 += weights x[n][i ..] (16 floats, each
// exactly a double, widened once for all N). G and N are constants so that `acc` stays in
// registers: indexed at run time, it lived on the stack and every multiply-add waited on a store.
template <int G, int N>
WARREN_AVX512 inline void fma16(__m512 weights, const double* const* x, std::int64_t i,
                                __m512d (&acc)[N][8]) {
  const __m512d low = _mm512_cvtps_pd(_mm512_castps512_ps256(weights));
  const __m512d high = _mm512_cvtps_pd(_mm512_extractf32x8_ps(weights, 1));
  for (int n = 0; n < N; ++n) {
    acc[n][2 * G] = _mm512_fmadd_pd(low, _mm512_loadu_pd(x[n] + i), acc[n][2 * G]);
    acc[n][2 * G + 1] = _mm512_fmadd_pd(high, _mm512_loadu_pd(x[n] + i + 8), acc[n][2 * G + 1]);
  }
}

// A row weighed 16 columns at a time (FP8, BF16) against N inputs: `weights16(i)` decodes columns
// i .. i+15, once for all of them; each input's lanes are what they are with it alone.
template <int N, class Weights16>
WARREN_AVX512 inline void columns_avx512(const double* const* x, std::int64_t in,
                                         Weights16 weights16, double* out) {
  __m512d acc[N][8];
  for (auto& lanes : acc)
    for (__m512d& a : lanes) a = _mm512_setzero_pd();
  std::int64_t i = 0;
  for (; i + 64 <= in; i += 64) {
    fma16<0, N>(weights16(i), x, i, acc);
    fma16<1, N>(weights16(i + 16), x, i + 16, acc);
    fma16<2, N>(weights16(i + 32), x, i + 32, acc);
    fma16<3, N>(weights16(i + 48), x, i + 48, acc);
  }
  if (i + 16 <= in) fma16<0, N>(weights16(i), x, i, acc);
  if (i + 32 <= in) fma16<1, N>(weights16(i + 16), x, i + 16, acc);
  if (i + 48 <= in) fma16<2, N>(weights16(i + 32), x, i + 32, acc);
  for (int n = 0; n < N; ++n) out[n] = reduce64(acc[n]);
}

// `count` inputs through columns_avx512, kRowInputs at a time (24 of the 32 registers hold their
// lanes) and the rest together.
template <class Weights16>
WARREN_AVX512 inline void columns_avx512(const double* const* x, int count, std::int64_t in,
                                         Weights16 weights16, double* out) {
  int n = 0;
  for (; n + kRowInputs <= count; n += kRowInputs)
    columns_avx512<kRowInputs>(x + n, in, weights16, out + n);
  if (count - n == 2) columns_avx512<2>(x + n, in, weights16, out + n);
  if (count - n == 1) columns_avx512<1>(x + n, in, weights16, out + n);
}

// e4m3 to half precision by its bits, 16 at a time in 16-bit lanes (half the width of float
// lanes): the 7 magnitude bits moved to bits 13..7 (a half's exponent and top mantissa bits) read
// as 2^(e - 15) (1 + m/8), which is the e4m3 value times 2^-8 (biases 15 and 7), subnormals
// included; the sign moves from bit 7 to bit 15. Widened to floats by vcvtph2ps, exactly; the
// 2^8 joins the block scale (fp8_scaled_avx512). Code 0x7F (NaN) comes out 480: checkpoints hold
// none.
WARREN_AVX512 inline __m512 e4m3_16_half_avx512(const std::uint8_t* codes) {
  const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  const __m256i magnitude = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x7F)), 7);
  const __m256i sign = _mm256_slli_epi16(_mm256_and_si256(v, _mm256_set1_epi16(0x80)), 8);
  return _mm512_cvtph_ps(_mm256_or_si256(magnitude, sign));
}

// A block's e8m0 scale times 2^8 (e4m3_16_half_avx512's share). Exact while that stays a float:
// codes up to 246; the few above take the two multiplies apart (the same bits: both exact).
WARREN_AVX512 inline __m512 fp8_scaled_avx512(__m512 halves, std::uint8_t code) {
  if (code <= 246) return _mm512_mul_ps(halves, _mm512_set1_ps(e8m0(code + 8)));
  return _mm512_mul_ps(_mm512_mul_ps(halves, _mm512_set1_ps(0x1p8f)), _mm512_set1_ps(e8m0(code)));
}

WARREN_AVX512 void fp8_rows_avx512(const void* row, const std::uint8_t* scales,
                                   const double* const* x, int count, std::int64_t in,
                                   double* out) {
  const auto* w = static_cast<const std::uint8_t*>(row);
  columns_avx512(
      x, count, in,
      [&](std::int64_t i)
          WARREN_AVX512 { return fp8_scaled_avx512(e4m3_16_half_avx512(w + i), scales[i / 128]); },
      out);
}

WARREN_AVX512 void bf16_rows_avx512(const void* row, const std::uint8_t*, const double* const* x,
                                    int count, std::int64_t in, double* out) {
  const auto* w = static_cast<const std::uint16_t*>(row);
  columns_avx512(
      x, count, in,
      [&](std::int64_t i) WARREN_AVX512 {
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i))),
            16));
      },
      out);
}

WARREN_AVX512 double fp8_row_avx512(const void* row, const std::uint8_t* scales, const double* x,
                                    std::int64_t in) {
  double out;
  fp8_rows_avx512(row, scales, &x, 1, in, &out);
  return out;
}

WARREN_AVX512 double bf16_row_avx512(const void* row, const std::uint8_t* scales, const double* x,
                                     std::int64_t in) {
  double out;
  bf16_rows_avx512(row, scales, &x, 1, in, &out);
  return out;
}

// FP4 block `block` (32 columns in fp4_order's layout), its even columns into lane group G and
// its odd ones into G + 1.
template <int G>
WARREN_AVX512 inline void fp4_block_avx512(const std::uint8_t* w, const std::uint8_t* scales,
                                           const double* x, std::int64_t block, __m512 table,
                                           __m512d (&acc)[1][8]) {
  const __m512 scale = _mm512_set1_ps(e8m0(scales[block]));
  const __m512i bytes =
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + block * 16)));
  const __m512 even =
      _mm512_permutexvar_ps(_mm512_and_si512(bytes, _mm512_set1_epi32(0x0F)), table);
  const __m512 odd = _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), table);
  fma16<G, 1>(_mm512_mul_ps(even, scale), &x, block * 32, acc);
  fma16<G + 1, 1>(_mm512_mul_ps(odd, scale), &x, block * 32 + 16, acc);
}

WARREN_AVX512 double fp4_row_avx512(const void* row, const std::uint8_t* scales, const double* x,
                                    std::int64_t in) {
  const auto* w = static_cast<const std::uint8_t*>(row);
  const __m512 table = _mm512_loadu_ps(formats::e2m1_table().data());
  __m512d acc[1][8];
  for (__m512d& a : acc[0]) a = _mm512_setzero_pd();
  const std::int64_t blocks = in / 32;
  std::int64_t block = 0;
  for (; block + 2 <= blocks; block += 2) {  // positions 32 block + 0..63: lanes 0-63
    fp4_block_avx512<0>(w, scales, x, block, table, acc);
    fp4_block_avx512<2>(w, scales, x, block + 1, table, acc);
  }
  if (block < blocks) fp4_block_avx512<0>(w, scales, x, block, table, acc);
  return reduce64(acc[0]);
}

// --- AVX2 (with FMA) -------------------------------------------------------------------------
// The same 64 lanes in two passes over the row, 32 lanes each (eight vectors of 4 doubles, all a
// pass can hold in sixteen registers): lanes 0-31 take columns whose position mod 64 is below 32,
// lanes 32-63 the rest. Each lane sees the same products in the same order as with AVX-512.

using Pass = __m256d[8];  // acc[m]: lanes 4m .. 4m+3 of the pass's 32

WARREN_AVX2 inline void zero(Pass& acc) {
  for (__m256d& a : acc) a = _mm256_setzero_pd();
}

// The tree of reduce64, from the two passes' lanes.
WARREN_AVX2 inline double reduce64(const Pass& first, const Pass& second) {
  __m256d v[8];
  for (int m = 0; m < 8; ++m) v[m] = _mm256_add_pd(first[m], second[m]);  // (j, j+32)
  __m256d w[4];
  for (int m = 0; m < 4; ++m) w[m] = _mm256_add_pd(v[m], v[m + 4]);              // (j, j+16)
  const __m256d x0 = _mm256_add_pd(w[0], w[2]), x1 = _mm256_add_pd(w[1], w[3]);  // (j, j+8)
  return sum4(_mm256_add_pd(x0, x1));                                            // (j, j+4)
}

// Lanes 8Q .. 8Q+7 of the pass += weights x (8 floats); Q constant, as fma16's G.
template <int Q>
WARREN_AVX2 inline void fma8(__m256 weights, const double* x, Pass& acc) {
  acc[2 * Q] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(weights)), _mm256_loadu_pd(x),
                               acc[2 * Q]);
  acc[2 * Q + 1] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(weights, 1)),
                                   _mm256_loadu_pd(x + 4), acc[2 * Q + 1]);
}

WARREN_AVX2 inline __m256 bf16_8(const std::uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(
      _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

// One pass of a row weighed 8 columns at a time (FP8, BF16): the columns whose position mod 64 is
// in [32 half, 32 half + 32). `weights8(i)` decodes columns i .. i+7; where it also has
// `sixteen(i)` (FP8: one 16-code load and one set of 16-bit operations for two groups of 8, 7-10%
// faster), the whole spans take that.
template <class Weights8>
WARREN_AVX2 inline void columns_pass_avx2(const double* x, std::int64_t in, int half,
                                          Weights8 weights8, Pass& acc) {
  zero(acc);
  std::int64_t i = 32 * half;
  if constexpr (requires { weights8.sixteen(i); }) {
    for (; i + 32 <= in; i += 64) {
      const auto [w0, w1] = weights8.sixteen(i);
      fma8<0>(w0, x + i, acc);
      fma8<1>(w1, x + i + 8, acc);
      const auto [w2, w3] = weights8.sixteen(i + 16);
      fma8<2>(w2, x + i + 16, acc);
      fma8<3>(w3, x + i + 24, acc);
    }
  }
  for (; i + 32 <= in; i += 64) {
    fma8<0>(weights8(i), x + i, acc);
    fma8<1>(weights8(i + 8), x + i + 8, acc);
    fma8<2>(weights8(i + 16), x + i + 16, acc);
    fma8<3>(weights8(i + 24), x + i + 24, acc);
  }
  if (i + 8 <= in) fma8<0>(weights8(i), x + i, acc);
  if (i + 16 <= in) fma8<1>(weights8(i + 8), x + i + 8, acc);
  if (i + 24 <= in) fma8<2>(weights8(i + 16), x + i + 16, acc);
}

template <class Weights8>
WARREN_AVX2 inline double columns_avx2(const double* x, std::int64_t in, Weights8 weights8) {
  Pass first, second;
  columns_pass_avx2(x, in, 0, weights8, first);
  columns_pass_avx2(x, in, 1, weights8, second);
  return reduce64(first, second);
}

// Several inputs against one row, each row's weights decoded once for them all: the 64 lanes in
// passes of 4V (V vectors an input: V = 4, four passes of 16 lanes, or V = 2, eight of 8), N inputs
// a pass, N V accumulators in sixteen registers: N up to 3 with V = 4, up to 6 with V = 2. Pass k
// takes the columns whose position mod 64 is in [4V k, 4V k + 4V); each lane sees the same
// products in the same order as above, and the passes' lanes meet in reduce64's tree.
template <int N, int V, class Weights8>
WARREN_AVX2 inline void columns_avx2(const double* const* x, std::int64_t in, Weights8 weights8,
                                     double* out) {
  static_assert(V == 2 || V == 4);
  Pass lanes[N][2];  // lanes 0-31 and 32-63 of each input, as columns_avx2's two passes'
  for (int pass = 0; pass < 16 / V; ++pass) {
    __m256d acc[N][V];
    for (auto& input : acc)
      for (__m256d& a : input) a = _mm256_setzero_pd();
    for (std::int64_t i = 4 * V * pass; i + 4 * V <= in; i += 64) {
      __m256d w[V];
      for (int g = 0; g < V / 2; ++g) {
        const __m256 eight = weights8(i + 8 * g);
        w[2 * g] = _mm256_cvtps_pd(_mm256_castps256_ps128(eight));
        w[2 * g + 1] = _mm256_cvtps_pd(_mm256_extractf128_ps(eight, 1));
      }
      for (int n = 0; n < N; ++n)
        for (int m = 0; m < V; ++m)
          acc[n][m] = _mm256_fmadd_pd(w[m], _mm256_loadu_pd(x[n] + i + 4 * m), acc[n][m]);
    }
    for (int n = 0; n < N; ++n)
      for (int m = 0; m < V; ++m) {
        const int vector = V * pass + m;  // lanes 4 vector .. 4 vector + 3
        lanes[n][vector / 8][vector % 8] = acc[n][m];
      }
  }
  for (int n = 0; n < N; ++n) out[n] = reduce64(lanes[n][0], lanes[n][1]);
}

// `count` inputs: six at a time, then the rest together; one alone takes the two-pass kernel,
// whose eight chains of multiply-adds hide their latency better than four.
template <class Weights8>
WARREN_AVX2 inline void columns_avx2(const double* const* x, int count, std::int64_t in,
                                     Weights8 weights8, double* out) {
  int n = 0;
  for (; n + 6 <= count; n += 6) columns_avx2<6, 2>(x + n, in, weights8, out + n);
  switch (count - n) {
    case 5:
      return columns_avx2<5, 2>(x + n, in, weights8, out + n);
    case 4:
      return columns_avx2<4, 2>(x + n, in, weights8, out + n);
    case 3:
      return columns_avx2<3, 4>(x + n, in, weights8, out + n);
    case 2:
      return columns_avx2<2, 4>(x + n, in, weights8, out + n);
    case 1:
      out[n] = columns_avx2(x[n], in, weights8);
  }
}

// FP8 weights, 8 or 16 columns at a time, times their block's scale.
struct Fp8Weights {
  const std::uint8_t* w;
  const std::uint8_t* scales;
  WARREN_AVX2 __m256 operator()(std::int64_t i) const {
    return e4m3_scaled_avx2(e4m3_8_half_avx2(w + i), scales[i / 128]);
  }
  struct Two {
    __m256 low, high;
  };
  WARREN_AVX2 Two sixteen(std::int64_t i) const {
    const __m256i v =
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
    const __m256i halves = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(v, 8), 1),
                                            _mm256_set1_epi16(static_cast<short>(0xBF80)));
    const std::uint8_t code = scales[i / 128];
    return {e4m3_scaled_avx2(_mm256_cvtph_ps(_mm256_castsi256_si128(halves)), code),
            e4m3_scaled_avx2(_mm256_cvtph_ps(_mm256_extracti128_si256(halves, 1)), code)};
  }
};

WARREN_AVX2 void fp8_rows_avx2(const void* row, const std::uint8_t* scales, const double* const* x,
                               int count, std::int64_t in, double* out) {
  columns_avx2(x, count, in, Fp8Weights{static_cast<const std::uint8_t*>(row), scales}, out);
}

WARREN_AVX2 void bf16_rows_avx2(const void* row, const std::uint8_t*, const double* const* x,
                                int count, std::int64_t in, double* out) {
  const auto* w = static_cast<const std::uint16_t*>(row);
  columns_avx2(
      x, count, in, [&](std::int64_t i) WARREN_AVX2 { return bf16_8(w + i); }, out);
}

WARREN_AVX2 double fp8_row_avx2(const void* row, const std::uint8_t* scales, const double* x,
                                std::int64_t in) {
  double out;
  fp8_rows_avx2(row, scales, &x, 1, in, &out);
  return out;
}

WARREN_AVX2 double bf16_row_avx2(const void* row, const std::uint8_t* scales, const double* x,
                                 std::int64_t in) {
  double out;
  bf16_rows_avx2(row, scales, &x, 1, in, &out);
  return out;
}

// The head's BF16 row against an input in float (kernels.hpp, RowDotFloat): each 16 columns' words
// unpacked in-lane to floats (a BF16 value is a float's upper half), the 16-column spans of each
// 64 taking two of eight accumulators in turn; in float, no widening. Both sets run it.
WARREN_AVX2 double bf16_float_row_avx2(const void* row, const float* x, std::int64_t in) {
  const auto* w = static_cast<const std::uint16_t*>(row);
  const __m256i zero = _mm256_setzero_si256();
  __m256 acc[8];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  const auto span = [&](std::int64_t i, __m256& low, __m256& high) WARREN_AVX2 {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i));
    low = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v)),
                          _mm256_loadu_ps(x + i), low);
    high = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v)),
                           _mm256_loadu_ps(x + i + 8), high);
  };
  std::int64_t i = 0;
  for (; i + 64 <= in; i += 64)
    for (int k = 0; k < 4; ++k) span(i + 16 * k, acc[2 * k], acc[2 * k + 1]);
  for (int k = 0; i + 16 <= in; i += 16, ++k) span(i, acc[2 * k], acc[2 * k + 1]);
  const __m256 lanes =
      _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
                    _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])));
  return sum4(_mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(lanes)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps(lanes, 1))));
}

// e2m1 from 8 nibbles, times `scale`: the magnitude (3 bits) looked up, the sign bit moved to
// bit 31.
WARREN_AVX2 inline __m256 e2m1_8_avx2(__m256i nibbles, __m256 magnitudes, __m256 scale) {
  const __m256 magnitude =
      _mm256_permutevar8x32_ps(magnitudes, _mm256_and_si256(nibbles, _mm256_set1_epi32(7)));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(nibbles, _mm256_set1_epi32(8)), 28);
  return _mm256_mul_ps(_mm256_xor_ps(magnitude, _mm256_castsi256_ps(sign)), scale);
}

// One pass of an FP4 row: its even blocks (lanes 0-31) or its odd ones (32-63).
WARREN_AVX2 inline void fp4_pass_avx2(const std::uint8_t* w, const std::uint8_t* scales,
                                      const double* x, std::int64_t in, int half, Pass& acc) {
  const __m256 magnitudes = _mm256_loadu_ps(formats::e2m1_table().data());
  const __m256i low_nibble = _mm256_set1_epi32(0x0F);
  zero(acc);
  for (std::int64_t block = half; block * 32 < in; block += 2) {
    const __m256 scale = _mm256_set1_ps(e8m0(scales[block]));
    const std::uint8_t* bytes = w + block * 16;
    const double* xs = x + block * 32;
    const __m256i first =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
    const __m256i second =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + 8)));
    fma8<0>(e2m1_8_avx2(_mm256_and_si256(first, low_nibble), magnitudes, scale), xs, acc);
    fma8<1>(e2m1_8_avx2(_mm256_and_si256(second, low_nibble), magnitudes, scale), xs + 8, acc);
    fma8<2>(e2m1_8_avx2(_mm256_srli_epi32(first, 4), magnitudes, scale), xs + 16, acc);
    fma8<3>(e2m1_8_avx2(_mm256_srli_epi32(second, 4), magnitudes, scale), xs + 24, acc);
  }
}

WARREN_AVX2 double fp4_row_avx2(const void* row, const std::uint8_t* scales, const double* x,
                                std::int64_t in) {
  const auto* w = static_cast<const std::uint8_t*>(row);
  Pass first, second;
  fp4_pass_avx2(w, scales, x, in, 0, first);
  fp4_pass_avx2(w, scales, x, in, 1, second);
  return reduce64(first, second);
}

}  // namespace

std::string_view to_string(Kernels set) {
  switch (set) {
    case Kernels::Reference:
      return "reference";
    case Kernels::Avx2:
      return "avx2";
    case Kernels::Avx512:
      return "avx512";
  }
  return "reference";
}

std::optional<Kernels> parse_kernels(std::string_view name) {
  for (Kernels set : {Kernels::Reference, Kernels::Avx2, Kernels::Avx512})
    if (to_string(set) == name) return set;
  return std::nullopt;
}

bool supported(Kernels set) {
  switch (set) {
    case Kernels::Reference:
      return true;
    case Kernels::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Kernels::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma");
  }
  return false;
}

Kernels best_kernels() {
  if (supported(Kernels::Avx512)) return Kernels::Avx512;
  if (supported(Kernels::Avx2)) return Kernels::Avx2;
  return Kernels::Reference;
}

const RowKernels* row_kernels(Kernels set) {
  static const RowKernels avx2{.bf16 = bf16_row_avx2,
                               .fp8 = fp8_row_avx2,
                               .fp4 = fp4_row_avx2,
                               .fp8_ordered = fp8_ordered_row_avx2,
                               .fp4_quantised = fp4_quantised_avx2,
                               .fp8_quantised = fp8_quantised_avx2,
                               .bf16_rows = bf16_rows_avx2,
                               .fp8_rows = fp8_rows_avx2,
                               .fp4_quantised_rows = fp4_quantised_rows_avx2,
                               .fp8_quantised_rows = fp8_quantised_rows_avx2,
                               .fp4_quantised_tile = fp4_quantised_tile_avx2,
                               .fp4_quantised_tile_pair = fp4_quantised_tile_pair_avx2,
                               .fp8_block_panel = fp8_block_panel_avx2,
                               .ordered_tile = ordered_tile_avx2,
                               .key_dots = key_dots_avx2,
                               .key_sums = key_sums_avx2,
                               .bf16_float = bf16_float_row_avx2};
  // The AVX-512 set: its own kernels where they keep lanes, and the FP4 integer kernels with VNNI
  // (the same bits); the AVX2 ones where an exact sum or an order of their own leaves none to keep.
  static const RowKernels avx512 = [] {
    RowKernels set = avx2;
    set.bf16 = bf16_row_avx512;
    set.fp8 = fp8_row_avx512;
    set.fp4 = fp4_row_avx512;
    set.bf16_rows = bf16_rows_avx512;
    set.fp8_rows = fp8_rows_avx512;
    if (__builtin_cpu_supports("avx512vnni")) {
      set.fp4_quantised = fp4_quantised_avx512;
      set.fp4_quantised_rows = fp4_quantised_rows_avx512;
      set.fp4_quantised_tile = fp4_quantised_tile_avx512;
      set.fp4_quantised_tile_pair = fp4_quantised_tile_pair_avx512;
    }
    return set;
  }();
  switch (set) {
    case Kernels::Reference:
      return nullptr;
    case Kernels::Avx2:
      return &avx2;
    case Kernels::Avx512:
      return &avx512;
  }
  return nullptr;
}

void float_order(const double* x, float* ordered, std::int64_t in) {
  for (std::int64_t i = 0; i < in; i += 16)
    for (std::int64_t j = 0; j < 16; ++j)  // lanes: columns 0-3 and 8-11, then 4-7 and 12-15
      ordered[i + j] = static_cast<float>(x[i + (j / 4 == 1 ? j + 4 : j / 4 == 2 ? j - 4 : j)]);
}

void fp8_order(const double* x, double* ordered, std::int64_t in) {
  for (std::int64_t chunk = 0; chunk < in; chunk += 32)
    for (std::int64_t r = 0; r < 8; ++r)
      for (std::int64_t q = 0; q < 4; ++q) ordered[chunk + 4 * r + q] = x[chunk + r + 8 * q];
}

void fp4_order(const double* x, double* ordered, std::int64_t in) {
  for (std::int64_t block = 0; block < in; block += 32)
    for (std::int64_t j = 0; j < 16; ++j) {
      ordered[block + j] = x[block + 2 * j];
      ordered[block + 16 + j] = x[block + 2 * j + 1];
    }
}

}  // namespace warren::inference
