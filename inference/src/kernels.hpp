// The fast kernels of the linear layers: one row of a weight matrix, read packed (BF16, FP8 e4m3
// with 128x128 e8m0 block scales, FP4 e2m1 with 1x32 e8m0 scales), times an input vector of
// doubles. The reference path (weights.cpp, Linear::row and a double sum) stays the plain one these
// are checked against.
//
// Every kernel sums the same way, so that AVX2 and AVX-512 give the same bits: each weight is
// decoded to a float and multiplied by its block's scale (a power of two: exact, as every BF16,
// e4m3 and e2m1 value is exactly a float); lane p mod 64 of 64 accumulates, in double and in
// order, the products of the row's positions p (columns; for FP4, positions in fp4_order's
// layout) with one rounding each (a fused multiply-add); and the 64 lanes are reduced once, in a
// fixed tree ((j, j+32), (j, j+16), (j, j+8), (j, j+4), (j, j+2), (j, j+1)). 64 lanes are eight
// independent chains of AVX-512 multiply-adds: with two, their latency held the FP4 kernel to a
// third of its speed. The input stays in double, as the reference path's activations are:
// summed in float, the logits after 640 tokens moved 3.5% (relative L2) from the reference,
// because the model quantises its activations (FP8, FP4 indexer keys) and a last-bit difference
// flips a rounding there and then a top-k choice. The head alone, which feeds only the sampler,
// may sum in float (RowDotFloat below).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "warren/inference/model.hpp"

namespace warren::inference {

// A row's dot product. `scales`: the e8m0 codes of the row's blocks (FP8: of its 128-row band;
// FP4: its own), unused for BF16. `x`: `in` values, for FP4 in the kernel's order (fp4_order).
// `in` is a multiple of 16 (for FP4, of 32).
using RowDot = double (*)(const void* row, const std::uint8_t* scales, const double* x,
                          std::int64_t in);

// An input quantised to e4m3 in blocks of 128 with power-of-two scales (the model's activation
// quantisation), laid out for the integer kernels (FP4 and FP8 rows). Every value is then an
// integer number of 2^(e - 9), e its block's exponent (e4m3's step at its subnormals): at most 448
// x 2^9 < 2^18 in magnitude, which a row weighs exactly in 32-bit integers. Each value is split
// into 16-bit halves, value = 512 hi + lo with lo in [0, 512), for 16-bit multiply-adds. The FP8
// and FP4 kernels read the halves in different orders (QuantisedFor).
enum class QuantisedFor { Fp8Rows, Fp4Rows };
struct QuantisedInput {
  // Per 64 columns (one 32-byte span of an FP4 row), 128 words. Fp8Rows: hi then lo of the even
  // columns (32 each), then hi and lo of the odd ones. Fp4Rows: for v = 0 .. 3, hi then lo of the
  // 16 columns 4i + v (i = 0 .. 15), the order in which the FP4 kernel's in-lane widening leaves
  // a span's weights (fp4_quantised_avx2).
  std::vector<std::int16_t> parts;
  // Per span: 2^(e - 10), the input's share of a 32-block's scale 2^(w - 127) 2^(e - 9) 2^-1 (w
  // its e8m0 code; 2^-1: e2m1's values are the kernels' integers over 2). Both shares are powers
  // of two, so their product is the scale exactly.
  std::vector<double> scale;
  // Fp8Rows: each value over 2^(e - 9) (the integers that hi and lo split), in column order: for
  // the FP8 kernel's exact sums in double when it weighs several inputs at once.
  std::vector<double> units;
  // Per narrow unit (Fp4Rows: a span; Fp8Rows: a 128-block): whether it is narrow, its blocks'
  // integers (Fp4Rows: each 32-block's; Fp8Rows: the 128-block's), each block's divided by their
  // largest common power of two 2^s, fitting in 16 bits (on the small preset, about 93% of the
  // spans). The kernels weigh a narrow unit's quotients (`narrow`) with half the multiply-adds of
  // hi and lo.
  std::vector<std::uint8_t> is_narrow;
  // The quotients in parts' order without the lo words, 64 a span (zeros where not narrow).
  std::vector<std::int16_t> narrow;
  // Per block (Fp4Rows: 32 columns; Fp8Rows: 128): its share of the scale, its span's `scale`
  // times 2^s (s = 0 where not narrow).
  std::vector<double> block_scale;
  // Fp4Rows, per 32 columns: 12 times the sum of its integers over 2^s. The FP4 kernel weighs
  // e2m1's integers plus 12, which are never negative and so widen in-lane from bytes, and takes
  // this off (exact: under 2^27 in magnitude).
  std::vector<std::int32_t> bias;
  // Fp4Rows, per 128 columns: the integers the FP4 kernels weigh (each block's over 2^s, as `bias`
  // sums them) in three signed bytes each, v = p0 + 256 p1 + 65536 p2 (p0 and p1 in [-128, 127],
  // p2 in [-4, 4]): p0 of the 64 even columns, p0 of the 64 odd ones, then p1's, then p2's (384
  // bytes), for the AVX-512 kernel's byte multiply-adds (vpdpbusd). `third_piece`: whether any of
  // the 128 columns' p2 is not zero (none, where every block's quotients fit in 16 bits).
  std::vector<std::int8_t> pieces;
  std::vector<std::uint8_t> third_piece;
};

// `x` (`in` values, a multiple of 128, quantised by formats::round_trip_e4m3 in blocks of 128 with
// `exponents`) laid out for the integer kernels of `layout`; with its narrow units found (else none
// is narrow) where `find_narrow`, and its `pieces` where `with_pieces`: for the one-input kernels,
// which alone read them (the tile kernels for a prompt's FP4 layers do not: 4% of its time went to
// laying out pieces that no kernel read).
void quantised_input(std::span<const double> x, std::span<const int> exponents, QuantisedInput& out,
                     QuantisedFor layout, bool find_narrow = true, bool with_pieces = true);

// A row times a quantised input, `in` a multiple of 128: each block's products summed exactly
// (FP4: 32-blocks, an integer under 2^27; FP8: 128-blocks, under 2^44), times the block's two
// scales (exact: powers of two), added with one rounding each to a double: FP8, to the row's sum
// block after block; FP4, to one of two sums, block b to sum b mod 2 (two chains of additions,
// not one: one held the kernel to about four fifths of its speed; four, which held the tile
// kernel's sums in memory, measured no faster), and the row's value is then s0 + s1. A
// block's sum is exact however it is taken: in 16-bit multiply-adds, or (FP8, several inputs at
// once, the row decoded once for them all) in double, where every partial sum of 128 products of
// two e4m3 values, under 2^44 of their units, is exact too. With no lanes to keep, the AVX-512
// set runs these AVX2 kernels, except the FP4 ones where the CPU has VNNI
// (integer_kernels_avx512.cpp).
using RowDotQuantised = double (*)(const void* row, const std::uint8_t* scales,
                                   const QuantisedInput& x, std::int64_t in);

// A row against `count` inputs: out[n] is the one-input kernel's value for x[n], bit for bit, the
// row's weights decoded once for them all (a prompt's tokens, the tokens that chose an expert).
using RowDots = void (*)(const void* row, const std::uint8_t* scales, const double* const* x,
                         int count, std::int64_t in, double* out);
using RowDotsQuantised = void (*)(const void* row, const std::uint8_t* scales,
                                  const QuantisedInput* const* x, int count, std::int64_t in,
                                  double* out);
// Up to kTileInputs quantised inputs (a prompt's tokens) with the inputs across a vector's lanes,
// for the FP4 tile kernel: it broadcasts each pair of a row's weights to every lane and sums each
// input's products in its own lane, so a block's sums come out one input a lane, with no lanes of
// one input to add together. Built once for a layer's inputs and read by every row.
constexpr int kTileInputs = 16;
struct QuantisedTile {
  int count = 0;        // inputs, at most kTileInputs; the lanes past them are zeros
  std::int64_t in = 0;  // columns, a multiple of 128
  // Per 8 inputs (a group), per pair of columns (2p, 2p + 1): the 8 inputs' (hi, hi) word pairs,
  // then their (lo, lo) pairs (QuantisedInput's halves): 32 words. [groups, in / 2, 32]
  std::vector<std::int16_t> parts;
  // Per group, per 128 columns, each input's QuantisedInput::scale: [groups, in / 128, 8].
  std::vector<double> scale;
};

// The inputs `x` (at most kTileInputs, each of `in` columns) as a tile.
void quantised_tile(std::span<const QuantisedInput* const> x, std::int64_t in, QuantisedTile& out);

// A row against a tile's inputs: out[n] [count] is, bit for bit, the one-input kernel's value for
// input n.
using RowDotsTile = void (*)(const void* row, const std::uint8_t* scales, const QuantisedTile& x,
                             double* out);
// Two consecutive rows (`rows` and the next, their scales `scales` and the next row's) against a
// tile's inputs: out[n] and out[kTileInputs + n] are the one-row kernel's values for input n, bit
// for bit, each input read once for both.
using RowPairTile = void (*)(const void* rows, const std::uint8_t* scales, const QuantisedTile& x,
                             double* out);

// A prompt's FP8 rows against its quantised inputs as a matrix product, a 128-block at a time
// (Linear's apply_blocks): a group of kBlockRows rows' weights of the block against a panel of
// inputs, kBlockInputs at a time (a tile). Each row's value for each input gets the block's 128
// products summed (exact in any order: RowDotQuantised above) times the block's scales, added with
// one rounding; block after block, that is the one-input kernel's value, bit for bit. Each weight
// is decoded once for the panel and loaded once for a tile, each input value loaded once for the
// group's rows, where the several-inputs kernel decodes a row for at most 6 inputs and loads each
// value again for every row.
constexpr int kBlockRows = 4, kBlockInputs = 12, kBlockTileValues = 128 * kBlockInputs;
struct BlockGroup {
  const std::uint8_t* codes = nullptr;  // the first row's 128 codes of the block
  std::int64_t row_stride = 0;          // bytes from a row's codes to the next's
  int rows = 0;                         // 1 .. kBlockRows; the rows past them weigh nothing
  double factor[kBlockRows] = {};       // each row's share of the block's scale, 2^(code - 126)
  double* out = nullptr;                // the first row's value for the panel's first input
  std::int64_t out_stride = 0;          // from an input's values to the next input's
};
struct BlockInputs {
  // Per tile, the units of the block (QuantisedInput::units), x[k * kBlockInputs + t], zeros past
  // the last input; and each input's share of the block's scale (QuantisedInput::scale).
  const double* units = nullptr;
  const double* input_scale = nullptr;
  int inputs = 0;  // in all the panel's tiles
};
using BlockPanel = void (*)(const BlockGroup& group, const BlockInputs& panel);

// Input `token` of a prompt laid out for BlockPanel: its units and scale shares of each 128-block
// into the tiles of all the prompt's inputs (`tiles` of them, `in` columns): units[((block *
// tiles + tile) * 128 + k) * kBlockInputs + t] and scales[(block * tiles + tile) * kBlockInputs +
// t], with tile and t the token's tile and place in it.
void block_tiles_input(const QuantisedInput& x, std::int64_t token, std::int64_t tiles,
                       std::int64_t in, double* units, double* scales);

// A prompt's rows against its inputs (of doubles) in the documented order above, as a matrix
// product: a group of kBlockRows rows' weights, decoded to doubles lane by lane (weights[(r * 64 +
// j) * chunks + m]: row r's column 64 m + j), against a tile of kBlockInputs inputs laid out
// likewise (x[(j * chunks + m) * kBlockInputs + t], zeros past `inputs`): lane j
// of each row and input takes its columns in order, one fused multiply-add each, then the 64
// lanes the fixed tree; out[t * out_stride + r] for the first `inputs` inputs and `rows` rows.
// Each weight is loaded once for 12 inputs and each input value once for 4 rows, where the
// several-inputs kernels load every input value again for every row.
struct OrderedGroup {
  const double* weights = nullptr;  // kBlockRows rows' (zeros past `rows`)
  std::int64_t chunks = 0;          // columns / 64
  int rows = 0;                     // 1 .. kBlockRows; the rows past them are computed, not stored
  double* out = nullptr;
  std::int64_t out_stride = 0;
};
using OrderedTile = void (*)(const OrderedGroup& group, const double* x, int inputs);

// Input `token` of a prompt (`in` values, a multiple of 64) laid out for OrderedTile: tiles[((tile
// * 64 + j) * (in / 64) + m) * kBlockInputs + t] = x[64 m + j], with tile and t the token's tile
// and place in it.
void ordered_tiles_input(const double* x, std::int64_t token, std::int64_t in, double* tiles);

// Attention's products for a group of up to kKeyHeads heads sharing their keys (MQA), the keys
// floats (keys[j * d + i]), d a multiple of 8. KeyDots: logits[h * n + j] = key j . q[h * d ..],
// in 8 lanes (dimension i mod 8), each in order with one rounding (a fused multiply-add), then
// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). KeySums: sum[h * d + i] = the sum over keys
// j, in order, of p[h * n + j] times key j's value i, one fused multiply-add each. Both sets run
// the AVX2 ones.
constexpr int kKeyHeads = 4;
using KeyDots = void (*)(const float* keys, std::int64_t n, std::int64_t d, const double* q,
                         int heads, double* logits);
using KeySums = void (*)(const float* keys, std::int64_t n, std::int64_t d, const double* p,
                         int heads, double* sum);

// The head's BF16 row against its input rounded to float (float_order's layout), summed in float:
// the head feeds no later quantisation, only the sampler, so the float sums' error (about 1e-7 of
// a logit, relative) moves no rounding downstream, and they need none of the widening to double
// that holds the double kernels to about 12.8 GB/s a core on Zen 3 (docs/benchmarks.md). The
// order, the same on both sets (both run the AVX2 kernel): each 16 columns of each 64 go to two of
// eight accumulators of 8 floats (span k of the 64: accumulators 2k, for columns 0-3 and 8-11 of
// the span, and 2k + 1, for 4-7 and 12-15), one fused multiply-add each in column order; then
// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) in float, and its 8 lanes in double, lane j
// with j + 4, then sum4. `in` is a multiple of 16.
using RowDotFloat = double (*)(const void* row, const float* x, std::int64_t in);

// `x` rounded to float in the order the float kernel reads it: each 16 columns' 0-3, 8-11, 4-7,
// 12-15 (in-lane unpacks' order).
void float_order(const double* x, float* ordered, std::int64_t in);

// How many inputs the AVX-512 FP8 and BF16 kernels weigh at once: their lanes take 24 of the 32
// registers.
constexpr int kRowInputs = 3;

struct RowKernels {
  RowDot bf16 = nullptr, fp8 = nullptr, fp4 = nullptr;
  // fp8's value, bit for bit, from the input in fp8_order's layout, `in` a multiple of 64: the
  // weights' doubles built by integer operations instead of conversions (ordered_kernels.cpp).
  RowDot fp8_ordered = nullptr;
  RowDotQuantised fp4_quantised = nullptr, fp8_quantised = nullptr;
  RowDots bf16_rows = nullptr, fp8_rows = nullptr;
  RowDotsQuantised fp4_quantised_rows = nullptr, fp8_quantised_rows = nullptr;
  RowDotsTile fp4_quantised_tile = nullptr;
  RowPairTile fp4_quantised_tile_pair = nullptr;
  BlockPanel fp8_block_panel = nullptr;
  OrderedTile ordered_tile = nullptr;
  KeyDots key_dots = nullptr;
  KeySums key_sums = nullptr;
  RowDotFloat bf16_float = nullptr;
};

// The kernels of `set` (Kernels::Reference has none: nullptr).
const RowKernels* row_kernels(Kernels set);

// fp8_ordered's layout (`in` a multiple of 32): in each 32 columns, for r = 0 .. 7, the columns r,
// r + 8, r + 16, r + 24.
void fp8_order(const double* x, double* ordered, std::int64_t in);

// FP4 rows pack two values a byte, the even column in the low nibble: the kernels take each
// 32-column block's input as its 16 even columns, then its 16 odd ones.
void fp4_order(const double* x, double* ordered, std::int64_t in);

}  // namespace warren::inference
