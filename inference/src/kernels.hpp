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
// flips a rounding there and then a top-k choice.
#pragma once

#include <cstdint>
#include <string_view>

#include "warren/inference/model.hpp"

namespace warren::inference {

// A row's dot product. `scales`: the e8m0 codes of the row's blocks (FP8: of its 128-row band;
// FP4: its own), unused for BF16. `x`: `in` values, for FP4 in the kernel's order (fp4_order).
// `in` is a multiple of 16 (for FP4, of 32).
using RowDot = double (*)(const void* row, const std::uint8_t* scales, const double* x,
                          std::int64_t in);

struct RowKernels {
  RowDot bf16 = nullptr, fp8 = nullptr, fp4 = nullptr;
};

// The kernels of `set` (Kernels::Reference has none: nullptr).
const RowKernels* row_kernels(Kernels set);

// FP4 rows pack two values a byte, the even column in the low nibble: the kernels take each
// 32-column block's input as its 16 even columns, then its 16 odd ones.
void fp4_order(const double* x, double* ordered, std::int64_t in);

}  // namespace warren::inference
