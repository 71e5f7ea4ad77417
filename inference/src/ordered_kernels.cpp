// FP8 rows against an input of doubles with AVX2, without conversion instructions: wo_a (each
// group's rows against its heads' outputs, unquantised; a prompt's tokens one at a time), the
// input in an order of the kernel's own (fp8_order, kernels.hpp).
//
// fp8_row_avx2 (kernels.cpp) decodes 8 codes to halves, widens them to floats (vcvtph2ps) and the
// floats to doubles (vcvtps2pd): three conversions a 8 weights, which share one pipe on Zen 3 and
// held it to 3.3-3.7 GB/s a core. But a double's top 16 bits (sign, 11-bit exponent, 4 mantissa
// bits) hold every normal e4m3 value times a power of two, and its other 48 bits are zeros; so
// each weight's double is built here by integer operations on its code (the exponent rebiased and
// the block's scale 2^(k - 127) added to it) and moved to the top of a 64-bit lane by shifts and
// blends. The value is the one fp8_row_avx2 weighs (e4m3 times the scale, rounded to float: exact
// where every normal code times the scale is a normal float, 7 <= k <= 246), in the same lanes
// (position mod 64) in the same order and the same tree, so the row's value is its to the bit.
// The rest (codes with a zero exponent field, zeros and subnormals, and other scales) take
// fp8_row_avx2's decoding: rare (3 codes in 100,000 of the small preset's wo_a). BF16 rows built
// the same way (a double's top 32 bits) measured no faster than their conversions: the checks for
// zero and infinite exponents took the registers the accumulators needed.
#include "kernel_common.hpp"

namespace warren::inference {

namespace {

// The words of `words` at the top of 32-bit lanes: words 2j (`even`, shifted) and 2j + 1 (`odd`,
// kept by a blend with zeros; the masks' constants spilled the accumulators) to lane j.
WARREN_AVX2 inline void dwords(__m256i words, __m256i& even, __m256i& odd) {
  even = _mm256_slli_epi32(words, 16);
  odd = _mm256_blend_epi16(_mm256_setzero_si256(), words, 0xAA);
}

// The 32-bit lanes of `d` at the top of 64-bit lanes: lanes 2q (`even`) and 2q + 1 (`odd`) to
// lane q.
WARREN_AVX2 inline void qwords(__m256i d, __m256d& even, __m256d& odd) {
  even = _mm256_castsi256_pd(_mm256_slli_epi64(d, 32));
  odd = _mm256_castsi256_pd(_mm256_blend_epi32(_mm256_setzero_si256(), d, 0xAA));
}

// Accumulator r (lanes r, r + 8, r + 16, r + 24 of the pass's 32) += the weights of residue r
// times the input's (x: the span's 32 values in fp8_order's layout, residue r's at 4r), for the
// residues r of `w`'s four vectors.
template <int R0, int R1, int R2, int R3>
WARREN_AVX2 inline void weigh4(const __m256d (&w)[4], const double* x, __m256d acc[8]) {
  acc[R0] = _mm256_fmadd_pd(w[0], _mm256_loadu_pd(x + 4 * R0), acc[R0]);
  acc[R1] = _mm256_fmadd_pd(w[1], _mm256_loadu_pd(x + 4 * R1), acc[R1]);
  acc[R2] = _mm256_fmadd_pd(w[2], _mm256_loadu_pd(x + 4 * R2), acc[R2]);
  acc[R3] = _mm256_fmadd_pd(w[3], _mm256_loadu_pd(x + 4 * R3), acc[R3]);
}

// Eight vectors of weights from `weights` (32 doubles, the kernel's order) against the input's.
WARREN_AVX2 inline void weigh8(const double* weights, const double* x, __m256d acc[8]) {
#pragma GCC unroll 8  // a loop would keep the accumulators in memory
  for (int r = 0; r < 8; ++r)
    acc[r] = _mm256_fmadd_pd(_mm256_load_pd(weights + 4 * r), _mm256_loadu_pd(x + 4 * r), acc[r]);
}

// The last rounds of kernels.hpp's tree, (j, j+4), (j, j+2), (j, j+1), from lanes (j, j+4) of
// j = 0 .. 3 in `fours[j]`.
WARREN_AVX2 inline double last_rounds(const __m128d (&fours)[4]) {
  const __m128d low = _mm_add_pd(_mm_unpacklo_pd(fours[0], fours[1]),
                                 _mm_unpackhi_pd(fours[0], fours[1]));  // j = 0, 1
  const __m128d high = _mm_add_pd(_mm_unpacklo_pd(fours[2], fours[3]),
                                  _mm_unpackhi_pd(fours[2], fours[3]));  // j = 2, 3
  const __m128d twos = _mm_add_pd(low, high);
  return _mm_cvtsd_f64(_mm_add_sd(twos, _mm_unpackhi_pd(twos, twos)));
}

// 32 codes (every exponent field nonzero) at a fast block's `exponent`, weighed; in each 32
// columns, vector r holds columns r, r + 8, r + 16, r + 24 (fp8_order). A code's double's
// top 16 bits, in the word whose high byte it is (an arithmetic shift right by 7, and a mask): the
// sign at bit 15 and the magnitude's 7 bits at bits 1-7, under the exponent field's low 3 bits the
// mantissa's top 3; then `exponent` adds the bias (1023 - 7) and the block's 2^(k - 127) to the
// exponent field (bits 4-14, at most 15 + 1150 there). The odd codes are their words' high bytes
// already (the shift moves an even code's sign to bit 0, which the mask clears); the even ones
// are shifted up first. Word 4q, 4q + 2, 4q + 1, 4q + 3 of the even words are codes 8q, 8q + 4,
// 8q + 2, 8q + 6, of the odd ones codes 8q + 1, 8q + 5, 8q + 3, 8q + 7. Each half is weighed as it
// is built: the eight vectors and the eight accumulators together spilled.
WARREN_AVX2 inline void fp8_fast32(__m256i codes, __m256i exponent, const double* x,
                                   __m256d acc[8]) {
  const __m256i magnitude = _mm256_set1_epi16(static_cast<short>(0x80FE));
  const auto doubles = [&](__m256i high_bytes, __m256d(&w)[4]) WARREN_AVX2 {
    __m256i even, odd;
    dwords(
        _mm256_add_epi16(_mm256_and_si256(_mm256_srai_epi16(high_bytes, 7), magnitude), exponent),
        even, odd);
    qwords(even, w[0], w[1]);
    qwords(odd, w[2], w[3]);
  };
  __m256d w[4];
  doubles(_mm256_slli_epi16(codes, 8), w);
  weigh4<0, 4, 2, 6>(w, x, acc);
  doubles(codes, w);
  weigh4<1, 5, 3, 7>(w, x, acc);
}

// fp8_row_avx2's decoding (Fp8Weights, kernels.cpp): halves times the scale, in float; in
// fp8_order's layout. Not inlined: its registers beside the fast path's spilled the accumulators.
WARREN_AVX2 __attribute__((noinline)) void fp8_slow32(const std::uint8_t* codes, std::uint8_t k,
                                                      double* weights) {
  alignas(32) float values[32];
  for (int g = 0; g < 4; ++g)
    _mm256_store_ps(values + 8 * g, e4m3_scaled_avx2(e4m3_8_half_avx2(codes + 8 * g), k));
  for (int r = 0; r < 8; ++r)
    for (int q = 0; q < 4; ++q) weights[4 * r + q] = values[r + 8 * q];
}

// One pass, as fp8_row_avx2's: the columns whose position mod 64 is in [32 pass, 32 pass + 32),
// into eight accumulators, each lane's products in column order (fused multiply-adds). The
// accumulators are the pass's own, and every loop over them unrolled: indexed by the pass, or by
// a loop's counter, or through a lambda, they lived in memory.
WARREN_AVX2 inline void fp8_pass(const std::uint8_t* codes, const std::uint8_t* scales,
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
    if (k >= 7 && k <= 246 && !zero_exponent) {
      fp8_fast32(c, _mm256_set1_epi16(static_cast<short>((k + 1023 - 7 - 127) << 4)), x + i, acc);
    } else {
      alignas(32) double weights[32];
      fp8_slow32(codes + i, k, weights);
      weigh8(weights, x + i, acc);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) out[r] = acc[r];
}

}  // namespace

// The two passes' lanes reduced in kernels.hpp's tree: (j, j+32) the passes' vectors added, (j,
// j+16) lanes 0-1 of each with its lanes 2-3, (j, j+8) lanes r and r + 8 of residues r and
// r + 1 together, then last_rounds.
WARREN_AVX2 double fp8_ordered_row_avx2(const void* row, const std::uint8_t* scales,
                                        const double* x, std::int64_t in) {
  const auto* codes = static_cast<const std::uint8_t*>(row);
  __m256d acc[2][8];
  fp8_pass(codes, scales, x, in, 0, acc[0]);
  fp8_pass(codes, scales, x, in, 1, acc[1]);
  __m128d pairs[8];  // residue r: lanes r and r + 8
  for (int r = 0; r < 8; ++r) {
    const __m256d v = _mm256_add_pd(acc[0][r], acc[1][r]);
    pairs[r] = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  }
  __m128d eights[4];  // lanes 2m, 2m + 1
  for (int m = 0; m < 4; ++m)
    eights[m] = _mm_add_pd(_mm_unpacklo_pd(pairs[2 * m], pairs[2 * m + 1]),
                           _mm_unpackhi_pd(pairs[2 * m], pairs[2 * m + 1]));
  const __m128d fours[4] = {
      _mm_unpacklo_pd(eights[0], eights[2]), _mm_unpackhi_pd(eights[0], eights[2]),
      _mm_unpacklo_pd(eights[1], eights[3]), _mm_unpackhi_pd(eights[1], eights[3])};
  return last_rounds(fours);
}

}  // namespace warren::inference
