// The kernels that weigh a quantised input (kernels.hpp, QuantisedInput), each block's sum
// exact, for kernels.cpp's tables: FP4 and FP8 rows with AVX2, which both sets run (an exact sum
// leaves no lanes for a wider kernel to keep in the same order), and the FP4 ones with AVX-512.
#pragma once

#include "kernel_common.hpp"
#include "kernels.hpp"

namespace warren::inference {

WARREN_AVX2 void fp4_quantised_rows_avx2(const void* row, const std::uint8_t* scales,
                                         const QuantisedInput* const* x, int count, std::int64_t in,
                                         double* out);
WARREN_AVX2 double fp4_quantised_avx2(const void* row, const std::uint8_t* scales,
                                      const QuantisedInput& x, std::int64_t in);
WARREN_AVX2 void fp4_quantised_tile_avx2(const void* row, const std::uint8_t* scales,
                                         const QuantisedTile& x, double* out);
WARREN_AVX2 void fp4_quantised_tile_pair_avx2(const void* rows, const std::uint8_t* scales,
                                              const QuantisedTile& x, double* out);
WARREN_AVX2 void fp8_quantised_rows_avx2(const void* row, const std::uint8_t* scales,
                                         const QuantisedInput* const* x, int count, std::int64_t in,
                                         double* out);
// The FP4 kernels again with AVX-512 and VNNI (integer_kernels_avx512.cpp): the same bits. The
// AVX-512 set takes them where the CPU has VNNI (kernels.cpp).
WARREN_AVX512_VNNI void fp4_quantised_rows_avx512(const void* row, const std::uint8_t* scales,
                                                  const QuantisedInput* const* x, int count,
                                                  std::int64_t in, double* out);
WARREN_AVX512_VNNI double fp4_quantised_avx512(const void* row, const std::uint8_t* scales,
                                               const QuantisedInput& x, std::int64_t in);
WARREN_AVX512_VNNI void fp4_quantised_tile_avx512(const void* row, const std::uint8_t* scales,
                                                  const QuantisedTile& x, double* out);
WARREN_AVX512_VNNI void fp4_quantised_tile_pair_avx512(const void* rows, const std::uint8_t* scales,
                                                       const QuantisedTile& x, double* out);

WARREN_AVX2 double fp8_quantised_avx2(const void* row, const std::uint8_t* scales,
                                      const QuantisedInput& x, std::int64_t in);

}  // namespace warren::inference
