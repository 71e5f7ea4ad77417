// An FP8 row against an input of doubles with AVX2, without conversion instructions: a decoded
// token's wo_a (each group's 512 rows against its heads' outputs, unquantised).
//
// fp8_row_avx2 (kernels.cpp) decodes 8 codes to halves, widens them to floats (vcvtph2ps) and the
// floats to doubles (vcvtps2pd): three conversions a 8 weights, which share one pipe on Zen 3 and
// held it to 3.3-3.7 GB/s a core. But a double's top 16 bits (sign, 11-bit exponent, 4 mantissa
// bits) hold every normal e4m3 value times a power of two, and its other 48 are zeros; so each
// weight's double is built here in a 16-bit word by integer operations, the block's scale
// 2^(k - 127) added to its exponent, and moved to the top of a 64-bit lane by shifts and masks.
// The value is the one fp8_row_avx2 weighs (e4m3 times the scale, rounded to float): exact, where
// every normal code times the scale is a normal float (7 <= k <= 246). The rest (codes with a zero
// exponent field, zeros and subnormals, and other scales) take fp8_row_avx2's decoding, rarely.
#include "kernel_common.hpp"

namespace warren::inference {

namespace {

// 16 codes' doubles from their words' top 16 bits `top` (below): words 4q, 4q + 2, 4q + 1 and
// 4q + 3 moved to the top of lane q of four vectors, the even words by shifts and the odd ones
// kept by blends with zeros (the masks' constants spilled the accumulators).
WARREN_AVX2 inline void doubles16(__m256i top, __m256d out[4]) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i even = _mm256_slli_epi32(top, 16);            // words 2j at the top of dword j
  const __m256i odd = _mm256_blend_epi16(zero, top, 0xAA);    // words 2j + 1, there already
  out[0] = _mm256_castsi256_pd(_mm256_slli_epi64(even, 32));  // words 4q
  out[1] = _mm256_castsi256_pd(_mm256_blend_epi32(zero, even, 0xAA));  // words 4q + 2
  out[2] = _mm256_castsi256_pd(_mm256_slli_epi64(odd, 32));            // words 4q + 1
  out[3] = _mm256_castsi256_pd(_mm256_blend_epi32(zero, odd, 0xAA));   // words 4q + 3
}

// Lanes 4r .. 4r + 3 of the pass's accumulators += the weights of residue r times the input's
// (x: the 32 columns' values, fp8_order's layout), for the residues r of `w`'s four vectors.
template <int R0, int R1, int R2, int R3>
WARREN_AVX2 inline void weigh4(const __m256d w[4], const double* x, __m256d acc[8]) {
  acc[R0] = _mm256_fmadd_pd(w[0], _mm256_loadu_pd(x + 4 * R0), acc[R0]);
  acc[R1] = _mm256_fmadd_pd(w[1], _mm256_loadu_pd(x + 4 * R1), acc[R1]);
  acc[R2] = _mm256_fmadd_pd(w[2], _mm256_loadu_pd(x + 4 * R2), acc[R2]);
  acc[R3] = _mm256_fmadd_pd(w[3], _mm256_loadu_pd(x + 4 * R3), acc[R3]);
}

// 32 codes (every exponent field nonzero) at a fast block's `exponent`, weighed. A code's double's
// top 16 bits, in the word whose high byte it is (an arithmetic shift right by 7, and a mask): the
// sign at bit 15 and the magnitude's 7 bits at bits 1-7, under the exponent field's low 3 bits the
// mantissa's top 3; then `exponent` adds the bias (1023 - 7) and the block's 2^(k - 127) to the
// exponent field (bits 4-14, at most 15 + 1150 there). The odd codes are their words' high bytes
// already (the shift moves an even code's sign to bit 0, which the mask clears); the even ones
// are shifted up first. Even words give residues 0, 4, 2, 6; odd ones 1, 5, 3, 7. Each half is
// weighed as it is built: the eight vectors and the eight accumulators together spilled.
WARREN_AVX2 inline void fast32(__m256i codes, __m256i exponent, const double* x, __m256d acc[8]) {
  const __m256i magnitude = _mm256_set1_epi16(static_cast<short>(0x80FE));
  const auto top = [&](__m256i high_bytes) WARREN_AVX2 {
    return _mm256_add_epi16(_mm256_and_si256(_mm256_srai_epi16(high_bytes, 7), magnitude),
                            exponent);
  };
  __m256d w[4];
  doubles16(top(_mm256_slli_epi16(codes, 8)), w);
  weigh4<0, 4, 2, 6>(w, x, acc);
  doubles16(top(codes), w);
  weigh4<1, 5, 3, 7>(w, x, acc);
}

// fp8_row_avx2's decoding (Fp8Weights, kernels.cpp): halves times the scale, in float; in
// fp8_order's layout. Not inlined: its registers beside the fast path's spilled accumulators.
WARREN_AVX2 __attribute__((noinline)) void slow32(const std::uint8_t* codes, std::uint8_t k,
                                                  double* weights) {
  alignas(32) float values[32];
  for (int g = 0; g < 4; ++g) {
    const __m256 halves = e4m3_8_half_avx2(codes + 8 * g);
    _mm256_store_ps(values + 8 * g,
                    k <= 246 ? _mm256_mul_ps(halves, _mm256_set1_ps(e8m0(k + 8)))
                             : _mm256_mul_ps(_mm256_mul_ps(halves, _mm256_set1_ps(0x1p8f)),
                                             _mm256_set1_ps(e8m0(k))));
  }
  for (int r = 0; r < 8; ++r)
    for (int q = 0; q < 4; ++q) weights[4 * r + q] = values[r + 8 * q];
}

// One pass, as fp8_row_avx2's: the columns whose position mod 64 is in [32 pass, 32 pass + 32), in
// eight accumulators (vector r: lanes r, r + 8, r + 16, r + 24 of the pass's 32), each lane's
// products added in column order by fused multiply-adds. The accumulators are the pass's own: with
// the two passes' in one array, indexed by the pass, they lived in memory.
WARREN_AVX2 inline void pass_avx2(const std::uint8_t* codes, const std::uint8_t* scales,
                                  const double* x, std::int64_t in, int pass, __m256d out[8]) {
  __m256d acc[8];
#pragma GCC unroll 8
  for (__m256d& a : acc) a = _mm256_setzero_pd();
  for (std::int64_t i = 32 * pass; i < in; i += 64) {
    const std::uint8_t k = scales[i / 128];
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i));
    const bool zero_exponent =
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(c, _mm256_set1_epi8(0x78)),
                                               _mm256_setzero_si256())) != 0;
    if (k >= 7 && k <= 246 && !zero_exponent)
      fast32(c, _mm256_set1_epi16(static_cast<short>((k + 1023 - 7 - 127) << 4)), x + i, acc);
    else {
      alignas(32) double weights[32];
      slow32(codes + i, k, weights);
#pragma GCC unroll 8  // a loop would keep the accumulators in memory
      for (int r = 0; r < 8; ++r)
        acc[r] = _mm256_fmadd_pd(_mm256_load_pd(weights + 4 * r), _mm256_loadu_pd(x + i + 4 * r),
                                 acc[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) out[r] = acc[r];
}

}  // namespace

// The two passes' lanes reduced in kernels.hpp's tree, (j, j+32), (j, j+16), (j, j+8), (j, j+4),
// (j, j+2), (j, j+1).
WARREN_AVX2 double fp8_ordered_row_avx2(const void* row, const std::uint8_t* scales,
                                        const double* x, std::int64_t in) {
  const auto* codes = static_cast<const std::uint8_t*>(row);
  __m256d acc[2][8];
  pass_avx2(codes, scales, x, in, 0, acc[0]);
  pass_avx2(codes, scales, x, in, 1, acc[1]);
  // (j, j+32), then (j, j+16): lanes 0-1 of each vector with its lanes 2-3.
  __m128d pairs[8];  // residue r: lanes r and r + 8
  for (int r = 0; r < 8; ++r) {
    const __m256d v = _mm256_add_pd(acc[0][r], acc[1][r]);
    pairs[r] = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  }
  // (j, j+8): lanes r and r + 8 of residues r and r + 1 together.
  __m128d eights[4];  // lanes 2m, 2m + 1
  for (int m = 0; m < 4; ++m)
    eights[m] = _mm_add_pd(_mm_unpacklo_pd(pairs[2 * m], pairs[2 * m + 1]),
                           _mm_unpackhi_pd(pairs[2 * m], pairs[2 * m + 1]));
  const __m128d fours = _mm_add_pd(eights[0], eights[2]), more = _mm_add_pd(eights[1], eights[3]);
  const __m128d twos = _mm_add_pd(fours, more);  // (j, j+2): lanes 0-1 with 2-3
  return _mm_cvtsd_f64(_mm_add_sd(twos, _mm_unpackhi_pd(twos, twos)));
}

}  // namespace warren::inference
