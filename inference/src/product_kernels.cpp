// The matrix-product kernels (kernels.hpp): a prompt's rows against many inputs at once, a group
// of rows times a tile of inputs, each weight loaded once for the tile and each input value once
// for the group (BlockPanel, OrderedTile); and attention's, a group of heads against their keys
// (KeyDots, KeySums).
#include <iterator>

#include "kernel_common.hpp"
#include "kernels.hpp"

namespace warren::inference {

namespace {

// The group's rows' 128 codes of the block, each value times 2^-8 in double (e4m3_8_half_avx2,
// exact), w[r * 128 + k]; rows past `rows` weigh zeros.
WARREN_AVX2 void decode_group(const std::uint8_t* codes, std::int64_t row_stride, int rows,
                              double* w) {
  for (int r = 0; r < kBlockRows; ++r)
    for (int k = 0; k < 128; k += 8) {
      const __m256 halves =
          r < rows ? e4m3_8_half_avx2(codes + r * row_stride + k) : _mm256_setzero_ps();
      _mm256_store_pd(w + r * 128 + k, _mm256_cvtps_pd(_mm256_castps256_ps128(halves)));
      _mm256_store_pd(w + r * 128 + k + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(halves, 1)));
    }
}

// One tile: kBlockRows x kBlockInputs sums in 12 accumulators of 4 inputs (three a row), each
// weight broadcast to every lane: per column, 3 loads of inputs, 4 broadcasts and 12
// multiply-adds, which Zen 3's two FMA pipes issue in about 6 cycles (24 G products a second on a
// core, alone). Then each 4 x 4 of sums is turned so that a vector holds one input's 4 rows, which
// go to that input's 4 consecutive outputs.
WARREN_AVX2 void tile_product(const double* w, const double* x, __m256d factor,
                              const double* input_scale, int inputs, __m256i row_mask,
                              bool all_rows, double* out, std::int64_t stride) {
  constexpr int kVectors = kBlockInputs / 4;
  __m256d sum[kBlockRows][kVectors];
#pragma GCC unroll 4
  for (auto& row : sum)
#pragma GCC unroll 3
    for (auto& lanes : row) lanes = _mm256_setzero_pd();
#pragma GCC unroll 2
  for (int k = 0; k < 128; ++k) {
    __m256d values[kVectors];
#pragma GCC unroll 3
    for (int v = 0; v < kVectors; ++v) values[v] = _mm256_loadu_pd(x + k * kBlockInputs + 4 * v);
#pragma GCC unroll 4
    for (int r = 0; r < kBlockRows; ++r) {
      const __m256d weight = _mm256_broadcast_sd(w + r * 128 + k);
#pragma GCC unroll 3
      for (int v = 0; v < kVectors; ++v) sum[r][v] = _mm256_fmadd_pd(weight, values[v], sum[r][v]);
    }
  }
#pragma GCC unroll 3
  for (int v = 0; v < kVectors; ++v) {
    // rows 0-3 of inputs 4v .. 4v + 3, turned: by_input[j] holds input 4v + j's rows 0-3.
    const __m256d low01 = _mm256_unpacklo_pd(sum[0][v], sum[1][v]);   // r0 r1 of inputs 0, 2
    const __m256d high01 = _mm256_unpackhi_pd(sum[0][v], sum[1][v]);  // of inputs 1, 3
    const __m256d low23 = _mm256_unpacklo_pd(sum[2][v], sum[3][v]);
    const __m256d high23 = _mm256_unpackhi_pd(sum[2][v], sum[3][v]);
    const __m256d by_input[4] = {
        _mm256_permute2f128_pd(low01, low23, 0x20), _mm256_permute2f128_pd(high01, high23, 0x20),
        _mm256_permute2f128_pd(low01, low23, 0x31), _mm256_permute2f128_pd(high01, high23, 0x31)};
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const int t = 4 * v + j;
      if (t >= inputs) return;
      // The product of the exact total and two powers of two is exact: one rounding, the add.
      const __m256d scale = _mm256_mul_pd(factor, _mm256_set1_pd(input_scale[t]));
      double* at = out + t * stride;
      const __m256d product = _mm256_mul_pd(by_input[j], scale);
      if (all_rows)
        _mm256_storeu_pd(at, _mm256_add_pd(_mm256_loadu_pd(at), product));
      else
        _mm256_maskstore_pd(at, row_mask, _mm256_add_pd(_mm256_maskload_pd(at, row_mask), product));
    }
  }
}

}  // namespace

WARREN_AVX2 void fp8_block_panel_avx2(const BlockGroup& group, const BlockInputs& panel) {
  alignas(32) double w[kBlockRows * 128];
  decode_group(group.codes, group.row_stride, group.rows, w);
  // 2^8: the decoded weights are the values times 2^-8.
  const __m256d factor = _mm256_mul_pd(_mm256_loadu_pd(group.factor), _mm256_set1_pd(0x1p8));
  const __m256i row_mask =
      _mm256_cmpgt_epi64(_mm256_set1_epi64x(group.rows), _mm256_setr_epi64x(0, 1, 2, 3));
  for (int tile = 0; tile * kBlockInputs < panel.inputs; ++tile)
    tile_product(w, panel.units + tile * kBlockTileValues, factor,
                 panel.input_scale + tile * kBlockInputs, panel.inputs - tile * kBlockInputs,
                 row_mask, group.rows == kBlockRows,
                 group.out + tile * kBlockInputs * group.out_stride, group.out_stride);
}

WARREN_AVX2 void ordered_tile_avx2(const OrderedGroup& group, const double* x, int inputs) {
  constexpr int kVectors = kBlockInputs / 4;
  const std::int64_t chunks = group.chunks;
  alignas(32) double lanes[kBlockRows][64][kBlockInputs];  // [r][j][t]
  for (int j = 0; j < 64; ++j) {
    __m256d sum[kBlockRows][kVectors];
#pragma GCC unroll 4
    for (auto& row : sum)
#pragma GCC unroll 3
      for (auto& v : row) v = _mm256_setzero_pd();
    const double* column = x + j * chunks * kBlockInputs;
    const double* w = group.weights + j * chunks;
    // Lane j: columns j, j + 64, j + 128, ... in order, one rounding each.
    for (std::int64_t m = 0; m < chunks; ++m) {
      __m256d values[kVectors];
#pragma GCC unroll 3
      for (int v = 0; v < kVectors; ++v)
        values[v] = _mm256_loadu_pd(column + m * kBlockInputs + 4 * v);
#pragma GCC unroll 4
      for (int r = 0; r < kBlockRows; ++r) {
        const __m256d weight = _mm256_broadcast_sd(w + r * 64 * chunks + m);
#pragma GCC unroll 3
        for (int v = 0; v < kVectors; ++v)
          sum[r][v] = _mm256_fmadd_pd(weight, values[v], sum[r][v]);
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kBlockRows; ++r)
#pragma GCC unroll 3
      for (int v = 0; v < kVectors; ++v) _mm256_store_pd(&lanes[r][j][4 * v], sum[r][v]);
  }
  // The fixed tree: lane j plus lane j + half, for half = 32, 16, .., 1, every input at once.
  for (int r = 0; r < group.rows; ++r) {
    for (int half = 32; half >= 1; half /= 2)
      for (int j = 0; j < half; ++j)
#pragma GCC unroll 3
        for (int v = 0; v < kVectors; ++v)
          _mm256_store_pd(&lanes[r][j][4 * v],
                          _mm256_add_pd(_mm256_load_pd(&lanes[r][j][4 * v]),
                                        _mm256_load_pd(&lanes[r][j + half][4 * v])));
    for (int t = 0; t < inputs; ++t) group.out[t * group.out_stride + r] = lanes[r][0][t];
  }
}

namespace {

// H heads' logits against n keys: per head and key, 8 lanes (dimension i mod 8) in order, one
// fused multiply-add each, then ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). Each key's 8
// floats are widened once for the H heads.
template <int H>
WARREN_AVX2 void key_dots(const float* keys, std::int64_t n, std::int64_t d, const double* q,
                          double* logits) {
  for (std::int64_t j = 0; j < n; ++j) {
    const float* key = keys + j * d;
    __m256d low[H], high[H];  // lanes 0-3 and 4-7
    for (int h = 0; h < H; ++h) low[h] = high[h] = _mm256_setzero_pd();
    for (std::int64_t i = 0; i < d; i += 8) {
      const __m256 k = _mm256_loadu_ps(key + i);
      const __m256d k_low = _mm256_cvtps_pd(_mm256_castps256_ps128(k));
      const __m256d k_high = _mm256_cvtps_pd(_mm256_extractf128_ps(k, 1));
      for (int h = 0; h < H; ++h) {
        low[h] = _mm256_fmadd_pd(k_low, _mm256_loadu_pd(q + h * d + i), low[h]);
        high[h] = _mm256_fmadd_pd(k_high, _mm256_loadu_pd(q + h * d + i + 4), high[h]);
      }
    }
    for (int h = 0; h < H; ++h) logits[h * n + j] = sum4(_mm256_add_pd(low[h], high[h]));
  }
}

// H heads' sums over n keys weighted by p: sum[h][i] = p[h][0] k_0[i] + p[h][1] k_1[i] + ... in
// key order, one fused multiply-add each, 8 dimensions at a time in registers.
template <int H>
WARREN_AVX2 void key_sums(const float* keys, std::int64_t n, std::int64_t d, const double* p,
                          double* sum) {
  for (std::int64_t i = 0; i < d; i += 8) {
    __m256d low[H], high[H];
    for (int h = 0; h < H; ++h) low[h] = high[h] = _mm256_setzero_pd();
    for (std::int64_t j = 0; j < n; ++j) {
      const __m256 k = _mm256_loadu_ps(keys + j * d + i);
      const __m256d k_low = _mm256_cvtps_pd(_mm256_castps256_ps128(k));
      const __m256d k_high = _mm256_cvtps_pd(_mm256_extractf128_ps(k, 1));
      for (int h = 0; h < H; ++h) {
        const __m256d weight = _mm256_broadcast_sd(p + h * n + j);
        low[h] = _mm256_fmadd_pd(weight, k_low, low[h]);
        high[h] = _mm256_fmadd_pd(weight, k_high, high[h]);
      }
    }
    for (int h = 0; h < H; ++h) {
      _mm256_storeu_pd(sum + h * d + i, low[h]);
      _mm256_storeu_pd(sum + h * d + i + 4, high[h]);
    }
  }
}

}  // namespace

void block_tiles_input(const QuantisedInput& x, std::int64_t token, std::int64_t tiles,
                       std::int64_t in, double* units, double* scales) {
  const std::int64_t tile = token / kBlockInputs, t = token % kBlockInputs;
  for (std::int64_t block = 0; block < in / 128; ++block) {
    const std::int64_t at = block * tiles + tile;
    for (std::int64_t k = 0; k < 128; ++k)
      units[(at * 128 + k) * kBlockInputs + t] = x.units[static_cast<std::size_t>(block * 128 + k)];
    scales[at * kBlockInputs + t] = x.scale[static_cast<std::size_t>(2 * block)];
  }
}

void ordered_tiles_input(const double* x, std::int64_t token, std::int64_t in, double* tiles) {
  const std::int64_t tile = token / kBlockInputs, t = token % kBlockInputs, chunks = in / 64;
  for (std::int64_t j = 0; j < 64; ++j)
    for (std::int64_t m = 0; m < chunks; ++m)
      tiles[((tile * 64 + j) * chunks + m) * kBlockInputs + t] = x[64 * m + j];
}

// By the group's heads, 1 .. kKeyHeads.
constexpr decltype(&key_dots<1>) kKeyDots[] = {key_dots<1>, key_dots<2>, key_dots<3>, key_dots<4>};
constexpr decltype(&key_sums<1>) kKeySums[] = {key_sums<1>, key_sums<2>, key_sums<3>, key_sums<4>};
static_assert(std::size(kKeyDots) == kKeyHeads && std::size(kKeySums) == kKeyHeads);

WARREN_AVX2 void key_dots_avx2(const float* keys, std::int64_t n, std::int64_t d, const double* q,
                               int heads, double* logits) {
  kKeyDots[heads - 1](keys, n, d, q, logits);
}

WARREN_AVX2 void key_sums_avx2(const float* keys, std::int64_t n, std::int64_t d, const double* p,
                               int heads, double* sum) {
  kKeySums[heads - 1](keys, n, d, p, sum);
}

}  // namespace warren::inference
