// The integer kernels (integer_kernels.hpp): rows against an input quantised as the model
// quantises its activations before FP8 and FP4 matmuls, each block's products summed exactly in
// integers (QuantisedInput, kernels.hpp) and only the blocks' scaled sums rounded, in double.
#include "integer_kernels.hpp"

// GCC 12's avx512fintrin.h warns that its own _mm512_undefined values may be used uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace warren::inference {

namespace {

// --- FP4 rows times a quantised input, in integers (QuantisedInput; both sets) ---------------
// 16 words (an input's halves or quotients) from `words`.
WARREN_AVX2 inline __m256i load_words(const std::int16_t* words) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words));
}

// N inputs (up to 3) against one row, decoded once: each 64-column span's 32 bytes to their
// integers plus 12 (the even columns' low nibbles and the odd columns' high ones, looked up by a
// byte shuffle), widened in-lane (word i of the four vectors: columns 4i, 4i + 1, 4i + 2, 4i + 3;
// words 0-7 the span's first 32-block, 8-15 its second), then for each input 512 hi + lo summed in
// 32-bit integers by eight multiply-adds, exact (at most 32 x 24 x 2^18 a block). Four blocks (the
// input's 128-block, one scale) are summed across their lanes together (unpacks and adds),
// the bias taken off, their totals scaled (exact: powers of two) and added to two sums in
// double lanes, block b to lane b mod 2, one rounding each; the lanes are added at the end
// (kernels.hpp's order). A narrow input (QuantisedInput::is_narrow) takes four multiply-adds a
// span. On one Zen 3 core, 4 MiB of rows against one narrow input: 9.7-10.1 GB/s, against 5.2-5.4
// with the signed widening, one sum and hi and lo (docs/benchmarks.md, 2026-12-07).
template <int N>
WARREN_AVX2 inline void fp4_quantised_avx2(const std::uint8_t* w, const std::uint8_t* scales,
                                           const QuantisedInput* const* x, std::int64_t in,
                                           double* out) {
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kE2m1Biased)));
  const __m256i nibble = _mm256_set1_epi8(0x0F), low_byte = _mm256_set1_epi16(0x00FF);
  __m128d sum[N];  // block b to lane b mod 2
  for (int n = 0; n < N; ++n) sum[n] = _mm_setzero_pd();
  for (std::int64_t group = 0; group < in / 128; ++group) {
    __m256i lanes[N][2];  // per span: lanes 0-3 its first block's sums, 4-7 its second's
    for (int s = 0; s < 2; ++s) {
      const std::int64_t span = 2 * group + s;
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * span));
      const __m256i evens = _mm256_shuffle_epi8(table, _mm256_and_si256(bytes, nibble));
      const __m256i odds =
          _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), nibble));
      const __m256i k[4] = {_mm256_and_si256(evens, low_byte), _mm256_and_si256(odds, low_byte),
                            _mm256_srli_epi16(evens, 8), _mm256_srli_epi16(odds, 8)};
      const auto weigh = [&](const std::int16_t* words, int v)
                             WARREN_AVX2 { return _mm256_madd_epi16(k[v], load_words(words)); };
      for (int n = 0; n < N; ++n) {
        if (x[n]->is_narrow[span]) {  // one multiply-add a column: the quotients (is_narrow)
          const std::int16_t* q = x[n]->narrow.data() + 64 * span;
          lanes[n][s] = _mm256_add_epi32(_mm256_add_epi32(weigh(q, 0), weigh(q + 16, 1)),
                                         _mm256_add_epi32(weigh(q + 32, 2), weigh(q + 48, 3)));
          continue;
        }
        // parts: for v = 0 .. 3, hi then lo of the columns 4i + v (QuantisedInput, Fp4Rows).
        const std::int16_t* parts = x[n]->parts.data() + 128 * span;
        const auto part = [&](int v, int half)
                              WARREN_AVX2 { return weigh(parts + 32 * v + 16 * half, v); };
        const __m256i hi = _mm256_add_epi32(_mm256_add_epi32(part(0, 0), part(1, 0)),
                                            _mm256_add_epi32(part(2, 0), part(3, 0)));
        const __m256i lo = _mm256_add_epi32(_mm256_add_epi32(part(0, 1), part(1, 1)),
                                            _mm256_add_epi32(part(2, 1), part(3, 1)));
        lanes[n][s] = _mm256_add_epi32(_mm256_slli_epi32(hi, 9), lo);
      }
    }
    for (int n = 0; n < N; ++n) {
      // Each block's four lanes summed (low half: blocks 0, 0, 2, 2; high half: 1, 1, 3, 3) by
      // unpacks and a vpshufd: two vphaddd, which take about two cycles each on Zen 3, made the
      // kernel 2-3% slower.
      const __m256i halves = _mm256_add_epi32(_mm256_unpacklo_epi64(lanes[n][0], lanes[n][1]),
                                              _mm256_unpackhi_epi64(lanes[n][0], lanes[n][1]));
      const __m256i sums = _mm256_add_epi32(halves, _mm256_shuffle_epi32(halves, 0xB1));
      const __m128i totals =
          _mm_blend_epi32(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1), 0xA);
      sum[n] = add_fp4_group(sum[n], totals, *x[n], group, scales + 4 * group);
    }
  }
  for (int n = 0; n < N; ++n)
    out[n] = _mm_cvtsd_f64(_mm_add_sd(sum[n], _mm_unpackhi_pd(sum[n], sum[n])));
}

// A block's 8 inputs' totals (hi and lo sums, 512 hi + lo), times the row's block scale `weight`
// and each input's `input_scale`, added to their two lanes of sums `sum` (inputs 0-3, 4-7): the
// tile kernels' one rounding a block.
WARREN_AVX2 inline void add_block(__m256i hi, __m256i lo, __m256d weight, const double* input_scale,
                                  __m256d (&sum)[2]) {
  const __m256i totals = _mm256_add_epi32(_mm256_slli_epi32(hi, 9), lo);
  for (int h = 0; h < 2; ++h) {
    const __m256d total = _mm256_cvtepi32_pd(h ? _mm256_extracti128_si256(totals, 1)
                                               : _mm256_castsi256_si128(totals));
    sum[h] = _mm256_add_pd(
        sum[h], _mm256_mul_pd(_mm256_mul_pd(total, weight), _mm256_loadu_pd(input_scale + 4 * h)));
  }
}

// A row's sums (block b mod 2, group, half) to its values for the tile's inputs, s0 + s1.
template <int G>
WARREN_AVX2 inline void tile_values(const __m256d (&sum)[2][G][2], int count, double* out) {
  alignas(32) double sums[2][8 * G];
  for (int j = 0; j < 2; ++j)
    for (int g = 0; g < G; ++g)
      for (int h = 0; h < 2; ++h) _mm256_store_pd(sums[j] + 8 * g + 4 * h, sum[j][g][h]);
  for (int n = 0; n < count; ++n) out[n] = sums[0][n] + sums[1][n];
}

// A tile's inputs against one row (QuantisedTile): for each pair of columns, the row's two
// integers k (a table's 32 bits for the pair's byte) broadcast to every lane and multiplied with
// each input's (hi, hi) and (lo, lo) pairs by one multiply-add each; over a 32-block, lane n of
// the sums holds input n's sum of k hi, resp. k lo, exact (at most 32 x 12 x 2^9 in magnitude),
// and 512 hi + lo is fp4_quantised_avx2's block total (under 2^27). The totals of eight inputs are
// then scaled and added to their sums together, block b to the sums of b mod 2:
// fp4_quantised_avx2's order and bits, without its sums across lanes. G:
// groups of 8 inputs (1 or 2), which share each broadcast. A tile of 2048 columns (128 KiB) is read
// from L2 for every row; weighing the rows a few blocks of columns at a time, the tile's part in
// L1, measured slower.
template <int G>
WARREN_AVX2 inline void fp4_tile_avx2(const std::uint8_t* w, const std::uint8_t* scales,
                                      const QuantisedTile& x, double* out) {
  __m256d sum[2][G][2];  // per block b mod 2 (fp4_quantised_avx2's lanes), group, half
  for (auto& lane : sum)
    for (auto& group : lane) group[0] = group[1] = _mm256_setzero_pd();
  const std::int64_t pairs = x.in / 2;
  for (std::int64_t even = 0; even < x.in / 32; even += 2) {
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      const std::int64_t block = even + j;
      __m256i hi[G], lo[G];
      for (int g = 0; g < G; ++g) hi[g] = lo[g] = _mm256_setzero_si256();
#pragma GCC unroll 16
      for (std::int64_t p = 16 * block; p < 16 * block + 16; ++p) {
        const __m256i k = _mm256_set1_epi32(kE2m1Pairs.k[w[p]]);
        for (int g = 0; g < G; ++g) {
          const std::int16_t* words = x.parts.data() + (g * pairs + p) * 32;
          hi[g] = _mm256_add_epi32(hi[g], _mm256_madd_epi16(k, load_words(words)));
          lo[g] = _mm256_add_epi32(lo[g], _mm256_madd_epi16(k, load_words(words + 16)));
        }
      }
      const __m256d weight = _mm256_set1_pd(e8m0_double(scales[block]));
      for (int g = 0; g < G; ++g)
        add_block(hi[g], lo[g], weight, x.scale.data() + (g * (x.in / 128) + block / 4) * 8,
                  sum[j][g]);
    }
  }
  tile_values<G>(sum, x.count, out);
}

// Two consecutive rows against a tile, each row's sums fp4_tile_avx2's, to the bit: each input
// vector loaded once for both rows' multiply-adds. One row a pass read the tile (128 KiB for 2,048
// columns, from L2) once a row; two, once a pair: a fifth to a third more products a second on a
// Zen 3 core (docs/benchmarks.md, seventh session). The sums are named, not arrays: arrays of them,
// indexed in loops, lived in memory.
template <int G>
WARREN_AVX2 inline void fp4_tile_pair_avx2(const std::uint8_t* w, const std::uint8_t* scales,
                                           const QuantisedTile& x, double* out) {
  const std::int64_t pairs = x.in / 2, row_scales = x.in / 32;  // pairs: a row's bytes too
  __m256d sum[2][2][G][2];  // per row, block b mod 2, group, half
  for (auto& row : sum)
    for (auto& lane : row)
      for (auto& group : lane) group[0] = group[1] = _mm256_setzero_pd();
  const std::int16_t* first = x.parts.data();
  const std::int16_t* second = x.parts.data() + (G - 1) * pairs * 32;
  for (std::int64_t block = 0; block < x.in / 32; ++block) {
    __m256i hi00 = _mm256_setzero_si256(), hi01 = hi00, hi10 = hi00, hi11 = hi00;  // row, group
    __m256i lo00 = hi00, lo01 = hi00, lo10 = hi00, lo11 = hi00;
#pragma GCC unroll 16
    for (std::int64_t p = 16 * block; p < 16 * block + 16; ++p) {
      const __m256i k0 = _mm256_set1_epi32(kE2m1Pairs.k[w[p]]);
      const __m256i k1 = _mm256_set1_epi32(kE2m1Pairs.k[w[pairs + p]]);
      const auto weigh = [&](const std::int16_t* words, __m256i& row0, __m256i& row1) WARREN_AVX2 {
        const __m256i v = load_words(words);
        row0 = _mm256_add_epi32(row0, _mm256_madd_epi16(k0, v));
        row1 = _mm256_add_epi32(row1, _mm256_madd_epi16(k1, v));
      };
      weigh(first + p * 32, hi00, hi10);
      weigh(first + p * 32 + 16, lo00, lo10);
      if constexpr (G == 2) {
        weigh(second + p * 32, hi01, hi11);
        weigh(second + p * 32 + 16, lo01, lo11);
      }
    }
    const __m256i hi[2][2] = {{hi00, hi01}, {hi10, hi11}}, lo[2][2] = {{lo00, lo01}, {lo10, lo11}};
    for (int r = 0; r < 2; ++r) {
      const __m256d weight = _mm256_set1_pd(e8m0_double(scales[r * row_scales + block]));
      for (int g = 0; g < G; ++g)
        add_block(hi[r][g], lo[r][g], weight, x.scale.data() + (g * (x.in / 128) + block / 4) * 8,
                  sum[r][block % 2][g]);
    }
  }
  for (int r = 0; r < 2; ++r) tile_values<G>(sum[r], x.count, out + kTileInputs * r);
}

// --- FP8 rows times a quantised input, in integers (AVX2; the AVX-512 set runs it too) ---------
// An e4m3 code's value is an integer number of 2^-9: sig 2^s, with sig its significand (8 + m; m
// for a subnormal) and s = max(e - 1, 0) for e its exponent field; at most 15 x 2^14, too wide for
// a 16-bit multiply. So it is split at 2^8 by its exponent: low = sig 2^s where s < 8 (at most
// 15 x 2^7), high = sig 2^(s - 8) where s >= 8 (at most 15 x 2^6); value = low + 256 high, one of
// the two zero. vpmaddubsw makes each, a table's power of two (an unsigned byte; 0 past the
// table's range, and for the odd or the even columns, whose index has bit 7 set) times the signed
// significand.
struct Fp8Integers {
  __m256i low_even, low_odd, high_even, high_odd;  // 16 words each: columns 2j, resp. 2j + 1
};

// By exponent field: the significand's leading bit; low's and high's powers of two.
constexpr std::uint8_t kLead[16] = {0, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8};
constexpr std::uint8_t kLow[16] = {1, 1, 2, 4, 8, 16, 32, 64, 128, 0, 0, 0, 0, 0, 0, 0};
constexpr std::uint8_t kHigh[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64};

WARREN_AVX2 inline __m256i table_avx2(const std::uint8_t (&t)[16]) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
}

WARREN_AVX2 inline Fp8Integers fp8_integers_avx2(const std::uint8_t* codes) {
  const __m256i lead = table_avx2(kLead), low = table_avx2(kLow), high = table_avx2(kHigh);
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
  const __m256i e = _mm256_and_si256(_mm256_srli_epi16(c, 3), _mm256_set1_epi8(0x0F));
  // vpsignb: negated where the code's sign bit is set, 0 for code 0 (whose significand is 0).
  const __m256i sig = _mm256_sign_epi8(
      _mm256_or_si256(_mm256_and_si256(c, _mm256_set1_epi8(7)), _mm256_shuffle_epi8(lead, e)), c);
  const __m256i even = _mm256_or_si256(e, _mm256_set1_epi16(static_cast<short>(0x8000)));
  const __m256i odd = _mm256_or_si256(e, _mm256_set1_epi16(0x0080));
  return {_mm256_maddubs_epi16(_mm256_shuffle_epi8(low, even), sig),
          _mm256_maddubs_epi16(_mm256_shuffle_epi8(low, odd), sig),
          _mm256_maddubs_epi16(_mm256_shuffle_epi8(high, even), sig),
          _mm256_maddubs_epi16(_mm256_shuffle_epi8(high, odd), sig)};
}

// Against the input's 512 hi + lo, a 128-block's products sum to 512 A + B, with
//   A = sum low hi + 256 sum high hi,  B = sum low lo + 256 sum high lo
// in 32-bit lanes: 16 products a lane, each at most 256 x 960 x 512 in magnitude (960: e4m3's
// NaN codes, which checkpoints do not hold, weigh as 15 x 2^13), so under 2^31. 512 A + B, under
// 2^44, is then exact in double; times the block's scales (powers of two: exact) it is added to
// the row's sum, block after block, with one rounding each.
WARREN_AVX2 inline double fp8_quantised_one_avx2(const std::uint8_t* w, const std::uint8_t* scales,
                                                 const QuantisedInput& x, std::int64_t in) {
  double sum = 0;
  for (std::int64_t block = 0; block < in / 128; ++block) {
    __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
    // A narrow block (QuantisedInput::is_narrow): its quotients q against the weights' high and
    // low integers apart, a = sum high q and b = sum low q (16 products a lane, at most 960 x 2^15
    // and 1920 x 2^15: under 2^30), and the block's sum is 256 a + b, half the multiply-adds.
    const bool narrow = x.is_narrow[static_cast<std::size_t>(block)];
    if (narrow) {
      // The quarters unrolled: with the wide quarters' sums beside them, they spilled; apart,
      // 2-4% faster than a loop (docs/benchmarks.md, seventh session).
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {  // 32 columns: half q % 2 of span 2 block + q / 2
        const Fp8Integers v = fp8_integers_avx2(w + 128 * block + 32 * q);
        // narrow: the span's even columns' quotients, then its odd ones'.
        const std::int16_t* quotients = x.narrow.data() + 64 * (2 * block + q / 2) + 16 * (q % 2);
        const __m256i even = load_words(quotients), odd = load_words(quotients + 32);
        a = _mm256_add_epi32(a, _mm256_add_epi32(_mm256_madd_epi16(v.high_even, even),
                                                 _mm256_madd_epi16(v.high_odd, odd)));
        b = _mm256_add_epi32(b, _mm256_add_epi32(_mm256_madd_epi16(v.low_even, even),
                                                 _mm256_madd_epi16(v.low_odd, odd)));
      }
    } else {
#pragma GCC unroll 1  // unrolled, the four quarters' temporaries spilled: a tenth slower
      for (int q = 0; q < 4; ++q) {
        const Fp8Integers v = fp8_integers_avx2(w + 128 * block + 32 * q);
        // parts: hi and lo of the span's even columns, then of its odd ones (QuantisedInput).
        const std::int16_t* parts = x.parts.data() + 128 * (2 * block + q / 2) + 16 * (q % 2);
        const auto weigh = [&](__m256i even, __m256i odd) WARREN_AVX2 {
          const __m256i low = _mm256_add_epi32(_mm256_madd_epi16(v.low_even, even),
                                               _mm256_madd_epi16(v.low_odd, odd));
          const __m256i high = _mm256_add_epi32(_mm256_madd_epi16(v.high_even, even),
                                                _mm256_madd_epi16(v.high_odd, odd));
          return _mm256_add_epi32(low, _mm256_slli_epi32(high, 8));
        };
        a = _mm256_add_epi32(a, weigh(load_words(parts), load_words(parts + 64)));
        b = _mm256_add_epi32(b, weigh(load_words(parts + 32), load_words(parts + 96)));
      }
    }
    const auto lanes = [&](__m256i v, int half) WARREN_AVX2 {
      return _mm256_cvtepi32_pd(half ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v));
    };
    const __m256d k = _mm256_set1_pd(narrow ? 256.0 : 512.0);
    const double total = sum4(_mm256_add_pd(_mm256_fmadd_pd(lanes(a, 0), k, lanes(b, 0)),
                                            _mm256_fmadd_pd(lanes(a, 1), k, lanes(b, 1))));
    const double weight = e8m0_double(scales[block]) * 0x1p-8;  // 2^-9 a weight unit, 2 x scale
    sum += total * (weight * x.block_scale[static_cast<std::size_t>(block)]);
  }
  return sum;
}

// N inputs (2 to 6) against one row, the same sums in double: each weight, its value times 2^-8
// (e4m3_8_half_avx2), times each input's units, summed over the block in 8 lanes a input (12
// chains of multiply-adds for 6: their latency hidden). Every product is exact (4 significant
// bits times 4) and so is every partial sum, a multiple of 2^-17 under 2^27: the block's sum is
// fp8_quantised_one_avx2's 512 A + B times 2^-17, to the bit. An input costs two multiply-adds per
// 8 columns here, four 16-bit multiply-adds and four adds and shifts per 16 there: with 6 inputs,
// 12.3 against 9.0 G products a second on a Zen 3 core.
template <int N>
WARREN_AVX2 inline void fp8_quantised_doubles_avx2(const std::uint8_t* w,
                                                   const std::uint8_t* scales,
                                                   const QuantisedInput* const* x, std::int64_t in,
                                                   double* out) {
  double sum[N] = {};
  for (std::int64_t block = 0; block < in / 128; ++block) {
    __m256d acc[N][2];
    for (auto& input : acc) input[0] = input[1] = _mm256_setzero_pd();
    for (std::int64_t i = 128 * block; i < 128 * block + 128; i += 8) {
      const __m256 weights = e4m3_8_half_avx2(w + i);
      const __m256d low = _mm256_cvtps_pd(_mm256_castps256_ps128(weights));
      const __m256d high = _mm256_cvtps_pd(_mm256_extractf128_ps(weights, 1));
      for (int n = 0; n < N; ++n) {
        const double* units = x[n]->units.data() + i;
        acc[n][0] = _mm256_fmadd_pd(low, _mm256_loadu_pd(units), acc[n][0]);
        acc[n][1] = _mm256_fmadd_pd(high, _mm256_loadu_pd(units + 4), acc[n][1]);
      }
    }
    const double weight = e8m0_double(scales[block]) * 0x1p9;  // 2^8 (the halves), 2 x scale
    for (int n = 0; n < N; ++n) {
      const double total = sum4(_mm256_add_pd(acc[n][0], acc[n][1]));
      sum[n] += total * (weight * x[n]->scale[static_cast<std::size_t>(2 * block)]);
    }
  }
  for (int n = 0; n < N; ++n) out[n] = sum[n];
}

}  // namespace

WARREN_AVX2 void fp4_quantised_rows_avx2(const void* row, const std::uint8_t* scales,
                                         const QuantisedInput* const* x, int count, std::int64_t in,
                                         double* out) {
  in_threes(count, [&](auto inputs, int n) WARREN_AVX2 {
    fp4_quantised_avx2<decltype(inputs)::value>(static_cast<const std::uint8_t*>(row), scales,
                                                x + n, in, out + n);
  });
}

WARREN_AVX2 double fp4_quantised_avx2(const void* row, const std::uint8_t* scales,
                                      const QuantisedInput& x, std::int64_t in) {
  const QuantisedInput* input = &x;
  double out;
  fp4_quantised_rows_avx2(row, scales, &input, 1, in, &out);
  return out;
}

WARREN_AVX2 void fp4_quantised_tile_avx2(const void* row, const std::uint8_t* scales,
                                         const QuantisedTile& x, double* out) {
  const auto* w = static_cast<const std::uint8_t*>(row);
  if (x.count > 8) return fp4_tile_avx2<2>(w, scales, x, out);
  fp4_tile_avx2<1>(w, scales, x, out);
}

WARREN_AVX2 void fp4_quantised_tile_pair_avx2(const void* rows, const std::uint8_t* scales,
                                              const QuantisedTile& x, double* out) {
  const auto* w = static_cast<const std::uint8_t*>(rows);
  if (x.count > 8) return fp4_tile_pair_avx2<2>(w, scales, x, out);
  fp4_tile_pair_avx2<1>(w, scales, x, out);
}

WARREN_AVX2 void fp8_quantised_rows_avx2(const void* row, const std::uint8_t* scales,
                                         const QuantisedInput* const* x, int count, std::int64_t in,
                                         double* out) {
  const auto* w = static_cast<const std::uint8_t*>(row);
  int n = 0;
  for (; n + 6 <= count; n += 6) fp8_quantised_doubles_avx2<6>(w, scales, x + n, in, out + n);
  switch (count - n) {
    case 5:
      return fp8_quantised_doubles_avx2<5>(w, scales, x + n, in, out + n);
    case 4:
      return fp8_quantised_doubles_avx2<4>(w, scales, x + n, in, out + n);
    case 3:
      return fp8_quantised_doubles_avx2<3>(w, scales, x + n, in, out + n);
    case 2:
      return fp8_quantised_doubles_avx2<2>(w, scales, x + n, in, out + n);
    case 1:
      out[n] = fp8_quantised_one_avx2(w, scales, *x[n], in);
  }
}

WARREN_AVX2 double fp8_quantised_avx2(const void* row, const std::uint8_t* scales,
                                      const QuantisedInput& x, std::int64_t in) {
  return fp8_quantised_one_avx2(static_cast<const std::uint8_t*>(row), scales, x, in);
}

namespace {

// Where column `column` (0 .. 63) of a span goes in QuantisedInput's orders (kernels.hpp): group
// `group` (FP4: the column mod 4; FP8: mod 2) of `size` words (16; 32), at `place` in it. In
// `parts` each group is its hi words then its lo ones, in `narrow` its quotients alone.
struct SpanWord {
  std::size_t group, place, size;
  std::size_t part(int half) const { return 2 * size * group + size * half + place; }
  std::size_t quotient() const { return size * group + place; }
};
SpanWord span_word(QuantisedFor layout, std::size_t column) {
  const std::size_t groups = layout == QuantisedFor::Fp4Rows ? 4 : 2;
  return {column % groups, column / groups, 64 / groups};
}

// The largest s with 2^s dividing each of `units` (0 where all are 0), if their quotients fit in
// 16 bits; -1 if not (QuantisedInput::is_narrow).
int narrow_shift(std::span<const std::int32_t> units) {
  std::uint32_t bits = 0;  // the union of the magnitudes' bits
  std::int32_t largest = 0;
  for (std::int32_t u : units) {
    bits |= static_cast<std::uint32_t>(std::abs(u));
    largest = std::max(largest, std::abs(u));
  }
  const int shift = bits ? std::countr_zero(bits) : 0;
  return (largest >> shift) <= 32767 ? shift : -1;
}

}  // namespace

// Column `column`'s integer v in QuantisedInput::pieces' three bytes: p0 its low byte, signed, and
// p1 and p2 the same of (v - p0) / 256 (a multiple of 256: the shift is exact).
void add_pieces(std::size_t column, std::int32_t v, QuantisedInput& out) {
  const std::size_t group = column / 128, j = column % 128;
  std::int8_t* pieces = out.pieces.data() + 384 * group + 64 * (j % 2) + j / 2;
  const auto p0 = static_cast<std::int8_t>(v);
  const std::int32_t rest = (v - p0) >> 8;
  const auto p1 = static_cast<std::int8_t>(rest);
  const std::int32_t p2 = (rest - p1) >> 8;
  pieces[0] = p0;
  pieces[128] = p1;
  pieces[256] = static_cast<std::int8_t>(p2);
  if (p2 != 0) out.third_piece[group] = 1;
}

void quantised_input(std::span<const double> x, std::span<const int> exponents, QuantisedInput& out,
                     QuantisedFor layout, bool find_narrow, bool with_pieces) {
  const std::size_t spans = x.size() / 64;
  const bool fp4 = layout == QuantisedFor::Fp4Rows;
  // Per span (FP4) or per 128-block (FP8): its blocks of 32 (FP4) or 128 columns (FP8).
  const std::size_t unit = fp4 ? 64 : 128, block = fp4 ? 32 : 128;
  out.parts.resize(spans * 128);
  out.scale.resize(spans);
  out.units.resize(fp4 ? 0 : x.size());
  out.is_narrow.assign(x.size() / unit, 0);
  out.narrow.assign(find_narrow ? 64 * spans : 0, 0);
  out.block_scale.resize(x.size() / block);
  out.bias.assign(fp4 ? 2 * spans : 0, 0);
  const bool pieces = fp4 && with_pieces;
  out.pieces.resize(pieces ? 3 * x.size() : 0);
  out.third_piece.assign(pieces ? x.size() / 128 : 0, 0);
  for (std::size_t first = 0; first < x.size(); first += unit) {
    const int exponent = exponents[first / 128];
    const double to_units = std::ldexp(1.0, 9 - exponent);  // a power of two: no rounding
    std::int32_t units[128];
    for (std::size_t i = 0; i < unit; ++i) {
      // Exact: the value is a multiple of 2^(exponent - 9) below 2^(exponent + 9) in magnitude.
      const auto u = static_cast<std::int32_t>(x[first + i] * to_units);
      units[i] = u;
      const SpanWord word = span_word(layout, (first + i) % 64);
      std::int16_t* parts = out.parts.data() + 128 * ((first + i) / 64);
      parts[word.part(0)] = static_cast<std::int16_t>(u >> 9);  // arithmetic: floor
      parts[word.part(1)] = static_cast<std::int16_t>(u & 511);
      if (!fp4) out.units[first + i] = u;
    }
    for (std::size_t span = first / 64; span < (first + unit) / 64; ++span)
      out.scale[span] =
          std::bit_cast<double>(static_cast<std::uint64_t>(exponent - 10 + 1023) << 52);
    int shifts[2] = {0, 0};  // per block of the unit
    bool narrow = find_narrow;
    for (std::size_t b = 0; narrow && b < unit / block; ++b) {
      shifts[b] = narrow_shift(std::span<const std::int32_t>(units + block * b, block));
      narrow = shifts[b] >= 0;
    }
    out.is_narrow[first / unit] = narrow;
    for (std::size_t b = 0; b < unit / block; ++b) {
      const int shift = narrow ? shifts[b] : 0;
      out.block_scale[(first + block * b) / block] = std::ldexp(out.scale[first / 64], shift);
      for (std::size_t i = block * b; i < block * b + block; ++i) {
        const std::int32_t quotient = units[i] >> shift;
        if (fp4) {
          out.bias[(first + block * b) / block] += 12 * quotient;
          if (pieces) add_pieces(first + i, quotient, out);
        }
        if (!narrow) continue;
        const std::size_t column = (first + i) % 64;
        out.narrow[first + i - column + span_word(layout, column).quotient()] =
            static_cast<std::int16_t>(quotient);
      }
    }
  }
}

void quantised_tile(std::span<const QuantisedInput* const> x, std::int64_t in, QuantisedTile& out) {
  out.count = static_cast<int>(x.size());
  out.in = in;
  const std::int64_t groups = (out.count + 7) / 8, pairs = in / 2, spans = in / 64;
  out.parts.assign(static_cast<std::size_t>(groups * pairs * 32), 0);
  out.scale.assign(static_cast<std::size_t>(groups * (in / 128) * 8), 0.0);
  for (int n = 0; n < out.count; ++n) {
    const std::int64_t group = n / 8, lane = n % 8;
    const QuantisedInput& input = *x[static_cast<std::size_t>(n)];
    for (std::int64_t span = 0; span < spans; ++span) {
      const std::int16_t* parts = input.parts.data() + 128 * span;  // Fp4Rows' order
      const auto part = [&](std::int64_t column, int half) {
        return parts[span_word(QuantisedFor::Fp4Rows, static_cast<std::size_t>(column)).part(half)];
      };
      for (std::int64_t j = 0; j < 32; ++j) {
        std::int16_t* words = out.parts.data() + (group * pairs + 32 * span + j) * 32 + 2 * lane;
        words[0] = part(2 * j, 0);       // hi, column 2j of the span
        words[1] = part(2 * j + 1, 0);   // hi, column 2j + 1
        words[16] = part(2 * j, 1);      // lo, column 2j
        words[17] = part(2 * j + 1, 1);  // lo, column 2j + 1
      }
    }
    for (std::int64_t block = 0; block < in / 128; ++block)
      out.scale[static_cast<std::size_t>((group * (in / 128) + block) * 8 + lane)] =
          input.scale[static_cast<std::size_t>(2 * block)];
  }
}

}  // namespace warren::inference
