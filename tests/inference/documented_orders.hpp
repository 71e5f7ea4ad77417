// What the kernel tests share: the kernel sets this CPU runs, and the documented orders of
// kernels.hpp written out one product at a time, which every kernel must match bit for bit.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "formats.hpp"
#include "kernels.hpp"
#include "safetensors.hpp"

namespace warren::inference::testing {

namespace inf = warren::inference;

// The fast kernel sets this CPU runs (AVX2, AVX-512), each with its kernels.
inline std::vector<std::pair<inf::Kernels, const inf::RowKernels&>> runnable_sets() {
  std::vector<std::pair<inf::Kernels, const inf::RowKernels&>> sets;
  for (inf::Kernels set : {inf::Kernels::Avx2, inf::Kernels::Avx512})
    if (inf::supported(set)) sets.emplace_back(set, *inf::row_kernels(set));
  return sets;
}

// kernels.hpp's order, written out one product at a time: lane p mod 64 adds weight p (decoded,
// times its block's scale, a float) times x[p] with one rounding, then the fixed tree. Every kernel
// set this CPU runs must give exactly this, so that a machine without AVX-512 still checks the
// order the AVX-512 kernels keep (TheAvx2AndAvx512KernelsGiveTheSameLogits needs both).
inline double documented_order(const std::vector<float>& weights, const std::vector<double>& x) {
  double lane[64] = {};
  for (std::size_t p = 0; p < x.size(); ++p)
    lane[p % 64] = std::fma(static_cast<double>(weights[p]), x[p], lane[p % 64]);
  for (int half = 32; half >= 1; half /= 2)
    for (int j = 0; j < half; ++j) lane[j] += lane[j + half];
  return lane[0];
}

// The integer kernels' order (kernels.hpp): each block's products summed exactly (here in 64-bit
// integers: a weight's value over 2^-9 for FP8, over 1/2 for FP4; an input's over 2^(e - 9), e
// its 128-block's exponent), times the block's scales, added to a double: FP8 (128-column
// blocks) to the row's sum block after block; FP4 (32-column blocks, two values a byte, the even
// column low) block b to sum b mod 2, and the row's value is s0 + s1.
inline double documented_order_quantised(inf::DType format, const std::vector<std::uint8_t>& codes,
                                         const std::vector<std::uint8_t>& scales,
                                         const std::vector<double>& x,
                                         const std::vector<int>& exponents) {
  namespace formats = inf::formats;
  const bool fp8 = format == inf::DType::F8_E4M3;
  const std::size_t size = fp8 ? 128 : 32;
  const int weight_unit = fp8 ? -9 : -1;
  double sum[2] = {};
  for (std::size_t block = 0; block < x.size() / size; ++block) {
    const int exponent = exponents[block * size / 128];
    std::int64_t total = 0;
    for (std::size_t p = size * block; p < size * block + size; ++p) {
      const float value =
          fp8 ? formats::e4m3_to_float(codes[p])
              : formats::e2m1_table()[p % 2 ? codes[p / 2] >> 4 : codes[p / 2] & 15];
      total += static_cast<std::int64_t>(std::ldexp(value, -weight_unit)) *
               static_cast<std::int64_t>(std::ldexp(x[p], 9 - exponent));
    }
    sum[fp8 ? 0 : block % 2] += static_cast<double>(total) *
                                std::ldexp(1.0, weight_unit + exponent - 9 + scales[block] - 127);
  }
  return sum[0] + sum[1];
}

}  // namespace warren::inference::testing
