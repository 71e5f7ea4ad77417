// The FP4 integer kernels again for CPUs with AVX-512 and VNNI (integer_kernels.hpp): the same
// exact block sums as the AVX2 ones (integer_kernels.cpp), taken with VNNI's multiply-adds, which
// accumulate in the same instruction where AVX2 takes a vpmaddwd and a vpaddd. A block's sum is
// exact however it is taken, and the blocks are scaled and added to the row's sums in the AVX2
// kernels' order, so both give the same bits. Zen 4 takes a 512-bit operation on a 256-bit pipe
// twice: what these gain is fewer instructions, not wider ones. A first one-input kernel that
// decoded a span's 64 columns in one vector and took two vpdpwssd a narrow span was no faster than
// AVX2's (8.3-9.4 GB/s against 6.5-9.9, one core, in L2); the one below, which multiplies bytes,
// is (docs/benchmarks.md, ninth session).
#include "integer_kernels.hpp"

// GCC 12's avx512fintrin.h warns that its own _mm512_undefined values may be used uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <array>

namespace warren::inference {

namespace {

WARREN_AVX512_VNNI inline __m512i load_words(const std::int16_t* words) {
  return _mm512_loadu_si512(words);
}

// --- A row against up to 3 inputs (fp4_quantised_avx2's sums) --------------------------------
// A 128-column group's 64 bytes decode in one vector each for the even columns (the low nibbles)
// and the odd ones, as e2m1's integers plus 12 (kE2m1Biased: unsigned bytes), and vpdpbusd
// multiplies them with the input's signed bytes (QuantisedInput::pieces), four columns a lane:
// lane l holds columns 8l to 8l + 7, so lanes 0-3 the group's first 32-block and so on. Each
// piece's sums (at most 8 x 24 x 128 a lane), taken times 1, 256 and 65536, add up to the
// integers' products, exact; the four lanes of each block are summed, the bias taken off, and
// the four totals scaled and added to the sums of b mod 2 as fp4_quantised_avx2 adds them. Where
// AVX2 widens each byte of weights to 16 bits and takes a vpmaddwd and a vpaddd for each 16
// columns, this takes four vpdpbusd for 128 (six where some integer of the group needs p2).
template <int N>
WARREN_AVX512_VNNI inline void fp4_quantised_avx512(const std::uint8_t* w,
                                                    const std::uint8_t* scales,
                                                    const QuantisedInput* const* x, std::int64_t in,
                                                    double* out) {
  const __m512i table =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kE2m1Biased)));
  const __m512i nibble = _mm512_set1_epi8(0x0F), zero = _mm512_setzero_si512();
  const __m512i firsts = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
  __m128d sum[N];  // block b to lane b mod 2, as fp4_quantised_avx2
  for (int n = 0; n < N; ++n) sum[n] = _mm_setzero_pd();
  for (std::int64_t group = 0; group < in / 128; ++group) {
    const __m512i packed = _mm512_loadu_si512(w + 64 * group);
    const __m512i evens = _mm512_shuffle_epi8(table, _mm512_and_si512(packed, nibble));
    const __m512i odds =
        _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble));
    for (int n = 0; n < N; ++n) {
      const std::int8_t* pieces = x[n]->pieces.data() + 384 * group;
      const auto piece = [&](int j) WARREN_AVX512_VNNI {
        return _mm512_dpbusd_epi32(
            _mm512_dpbusd_epi32(zero, evens, _mm512_loadu_si512(pieces + 128 * j)), odds,
            _mm512_loadu_si512(pieces + 128 * j + 64));
      };
      __m512i lanes = _mm512_add_epi32(piece(0), _mm512_slli_epi32(piece(1), 8));
      if (x[n]->third_piece[static_cast<std::size_t>(group)])
        lanes = _mm512_add_epi32(lanes, _mm512_slli_epi32(piece(2), 16));
      lanes = _mm512_add_epi32(lanes, _mm512_shuffle_epi32(lanes, _MM_PERM_BADC));
      lanes = _mm512_add_epi32(lanes, _mm512_shuffle_epi32(lanes, _MM_PERM_CDAB));
      sum[n] =
          add_fp4_group(sum[n], _mm512_castsi512_si128(_mm512_permutexvar_epi32(firsts, lanes)),
                        *x[n], group, scales + 4 * group);
    }
  }
  for (int n = 0; n < N; ++n)
    out[n] = _mm_cvtsd_f64(_mm_add_sd(sum[n], _mm_unpackhi_pd(sum[n], sum[n])));
}

// --- Rows against a tile (fp4_tile_avx2's and fp4_tile_pair_avx2's sums) -----------------------
// QuantisedTile's 32 words a pair of columns and a group of 8 inputs, (hi, hi) pairs then (lo,
// lo) pairs, are one vector: one dpwssd with the pair's two integers in every lane adds the 8
// inputs' hi products to lanes 0-7 and their lo products to lanes 8-15, where AVX2 took two
// vpmaddwd and two vpaddd. A block's 8 totals are 512 hi + lo, scaled and added to the sums of
// block b mod 2 as AVX2's add_block does, 8 doubles at once.
WARREN_AVX512_VNNI inline void add_block(__m512i sums, __m512d weight, const double* input_scale,
                                         __m512d& sum) {
  const __m256i totals = _mm256_add_epi32(_mm256_slli_epi32(_mm512_castsi512_si256(sums), 9),
                                          _mm512_extracti64x4_epi64(sums, 1));
  sum = _mm512_add_pd(sum, _mm512_mul_pd(_mm512_mul_pd(_mm512_cvtepi32_pd(totals), weight),
                                         _mm512_loadu_pd(input_scale)));
}

// R consecutive rows (1 or 2) against a tile of G groups (1 or 2): out[kTileInputs r + n]. Four
// rows a pass, which read the tile from L2 half as often as two, measured 0-6% faster than two on
// one core of this Zen 4 (inference_bench, BM_RowKernelTile), and were not kept.
template <int R, int G>
WARREN_AVX512_VNNI inline void fp4_tile_rows_avx512(const std::uint8_t* w,
                                                    const std::uint8_t* scales,
                                                    const QuantisedTile& x, double* out) {
  const std::int64_t pairs = x.in / 2, row_scales = x.in / 32;  // pairs: a row's bytes too
  __m512d sum[R][2][G];                                         // per row, block b mod 2, group
  for (auto& row : sum)
    for (auto& lane : row)
      for (__m512d& group : lane) group = _mm512_setzero_pd();
  for (std::int64_t block = 0; block < x.in / 32; ++block) {
    __m512i acc[R][G];
    for (auto& row : acc)
      for (__m512i& group : row) group = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (std::int64_t p = 16 * block; p < 16 * block + 16; ++p) {
      __m512i k[R];
      for (int r = 0; r < R; ++r) k[r] = _mm512_set1_epi32(kE2m1Pairs.k[w[r * pairs + p]]);
      for (int g = 0; g < G; ++g) {
        const __m512i v = load_words(x.parts.data() + (g * pairs + p) * 32);
        for (int r = 0; r < R; ++r) acc[r][g] = _mm512_dpwssd_epi32(acc[r][g], k[r], v);
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m512d weight = _mm512_set1_pd(e8m0_double(scales[r * row_scales + block]));
      for (int g = 0; g < G; ++g)
        add_block(acc[r][g], weight, x.scale.data() + (g * (x.in / 128) + block / 4) * 8,
                  sum[r][block % 2][g]);
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(64) double sums[2][8 * G];
    for (int j = 0; j < 2; ++j)
      for (int g = 0; g < G; ++g) _mm512_store_pd(sums[j] + 8 * g, sum[r][j][g]);
    for (int n = 0; n < x.count; ++n) out[kTileInputs * r + n] = sums[0][n] + sums[1][n];
  }
}

}  // namespace

WARREN_AVX512_VNNI void fp4_quantised_rows_avx512(const void* row, const std::uint8_t* scales,
                                                  const QuantisedInput* const* x, int count,
                                                  std::int64_t in, double* out) {
  in_threes(count, [&](auto inputs, int n) WARREN_AVX512_VNNI {
    fp4_quantised_avx512<decltype(inputs)::value>(static_cast<const std::uint8_t*>(row), scales,
                                                  x + n, in, out + n);
  });
}

WARREN_AVX512_VNNI double fp4_quantised_avx512(const void* row, const std::uint8_t* scales,
                                               const QuantisedInput& x, std::int64_t in) {
  double out;
  fp4_quantised_avx512<1>(static_cast<const std::uint8_t*>(row), scales, std::array{&x}.data(), in,
                          &out);
  return out;
}

WARREN_AVX512_VNNI void fp4_quantised_tile_avx512(const void* row, const std::uint8_t* scales,
                                                  const QuantisedTile& x, double* out) {
  const auto* w = static_cast<const std::uint8_t*>(row);
  if (x.count > 8) return fp4_tile_rows_avx512<1, 2>(w, scales, x, out);
  fp4_tile_rows_avx512<1, 1>(w, scales, x, out);
}

WARREN_AVX512_VNNI void fp4_quantised_tile_pair_avx512(const void* rows, const std::uint8_t* scales,
                                                       const QuantisedTile& x, double* out) {
  const auto* w = static_cast<const std::uint8_t*>(rows);
  if (x.count > 8) return fp4_tile_rows_avx512<2, 2>(w, scales, x, out);
  fp4_tile_rows_avx512<2, 1>(w, scales, x, out);
}

}  // namespace warren::inference
