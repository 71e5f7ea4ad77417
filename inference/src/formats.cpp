// Number formats: see formats.hpp. Every conversion is exact arithmetic on doubles followed by one
// rounding, so the tables and the converters agree code for code (formats_test checks all codes).
#include "formats.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <type_traits>

namespace warren::inference::formats {

float bf16_to_float(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

std::uint16_t float_to_bf16(float value) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  if (std::isnan(value)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);  // keep it quiet
  // Round to nearest even on the 16 bits dropped: add 0x7FFF plus the kept part's lowest bit.
  const std::uint32_t rounded = bits + 0x7FFF + ((bits >> 16) & 1);
  return static_cast<std::uint16_t>(rounded >> 16);
}

namespace {

// The magnitude of a small float format with `mantissa_bits` and exponent `bias`, from its code
// without the sign: subnormal when the exponent field is 0.
double small_float_magnitude(unsigned code, int mantissa_bits, int bias) {
  const unsigned exponent = code >> mantissa_bits;
  const unsigned mantissa = code & ((1u << mantissa_bits) - 1);
  const double fraction = static_cast<double>(mantissa) / (1u << mantissa_bits);
  if (exponent == 0) return std::ldexp(fraction, 1 - bias);
  return std::ldexp(1.0 + fraction, static_cast<int>(exponent) - bias);
}

// The code (without sign) nearest to `magnitude`, ties to the even code (an even code has an
// even mantissa: the IEEE rule); magnitudes beyond the code `largest` saturate to it. One
// rounding of the mantissa, exact in double: the subnormal step below the smallest normal, the
// normal mantissa above it, a mantissa that rounds up to 2 carrying into the exponent.
unsigned nearest_code(double magnitude, unsigned largest, int mantissa_bits, int bias) {
  const double min_normal = std::ldexp(1.0, 1 - bias);
  unsigned code;
  if (magnitude < min_normal) {
    // Subnormals are multiples of min_normal / 2^mantissa_bits; rounding up to the smallest
    // normal gives its code (exponent field 1, mantissa 0) all the same.
    code = static_cast<unsigned>(std::nearbyint(std::ldexp(magnitude, bias - 1 + mantissa_bits)));
  } else {
    int exponent;
    const double fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction * 2^exponent
    // magnitude = (1 + m / 2^bits) * 2^(exponent - 1): the field is exponent - 1 + bias.
    double mantissa = std::nearbyint(std::ldexp(2 * fraction - 1, mantissa_bits));
    int field = exponent - 1 + bias;
    if (mantissa == std::ldexp(1.0, mantissa_bits)) mantissa = 0, ++field;
    const double max_field = static_cast<double>(largest >> mantissa_bits);
    if (field > max_field) return largest;
    code = (static_cast<unsigned>(field) << mantissa_bits) | static_cast<unsigned>(mantissa);
  }
  return std::min(code, largest);
}

}  // namespace

float e4m3_to_float(std::uint8_t code) {
  const float sign = (code & 0x80) ? -1.0f : 1.0f;
  if ((code & 0x7F) == 0x7F) return std::numeric_limits<float>::quiet_NaN();
  return sign * static_cast<float>(small_float_magnitude(code & 0x7F, 3, 7));
}

namespace {

// From double directly: a double rounded to float first could land on a midpoint it was not on.
std::uint8_t e4m3_code_of(double value) {
  const std::uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  if (std::isnan(value)) return sign | 0x7F;
  // 0x7E (448) is the largest finite code: 0x7F is NaN.
  return sign | static_cast<std::uint8_t>(nearest_code(std::fabs(value), 0x7E, 3, 7));
}

std::uint8_t e2m1_code_of(double value) {
  const std::uint8_t sign = std::signbit(value) ? 0x8 : 0x0;
  if (std::isnan(value)) return sign | 0x7;  // e2m1 has no NaN: the reference never makes one
  return sign | static_cast<std::uint8_t>(nearest_code(std::fabs(value), 0x7, 1, 1));
}

}  // namespace

std::uint8_t float_to_e4m3(float value) {
  return e4m3_code_of(value);
}

std::uint8_t double_to_e4m3(double value) {
  return e4m3_code_of(value);
}

std::uint8_t double_to_e2m1(double value) {
  return e2m1_code_of(value);
}

float e2m1_to_float(std::uint8_t code) {
  const float sign = (code & 0x8) ? -1.0f : 1.0f;
  return sign * static_cast<float>(small_float_magnitude(code & 0x7, 1, 1));
}

std::uint8_t float_to_e2m1(float value) {
  return e2m1_code_of(value);
}

float e8m0_to_float(std::uint8_t code) {
  // A table: weights' scales are read for every block of every row.
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 255; ++c) t[static_cast<std::size_t>(c)] = std::ldexp(1.0f, c - 127);
    t[255] = std::numeric_limits<float>::quiet_NaN();
    return t;
  }();
  return table[code];
}

std::uint8_t e8m0_of_exponent(int exponent) {
  return static_cast<std::uint8_t>(std::clamp(exponent, -127, 127) + 127);
}

namespace {

// log2 of max|v| / format_max, rounded up, in T as the reference computes it (float for float
// values): the exponent of a block's power-of-two scale.
template <class T>
int block_exponent(std::span<const T> block, T format_max) {
  T amax = static_cast<T>(1e-4);
  for (T v : block) amax = std::max(amax, std::fabs(v));
  return static_cast<int>(std::ceil(std::log2(amax / format_max)));
}

}  // namespace

int block_scale_exponent(std::span<const float> block, float format_max) {
  return block_exponent(block, format_max);
}

int block_scale_exponent(std::span<const double> block, double format_max) {
  return block_exponent(block, format_max);
}

namespace {

// 2^k as a double, for k in the normal range.
double power_of_two(int k) {
  return std::bit_cast<double>(static_cast<std::uint64_t>(k + 1023) << 52);
}

// Values are scaled by a power of two, so the scaled value is exact and one rounding (to the
// format's code) is all that happens; a double is converted to float without loss first only when
// it is in the format's range, which the scale guarantees.
template <class T, class ToCode, class FromCode>
void round_trip(std::span<T> values, std::size_t block, float format_max, ToCode to_code,
                FromCode from_code) {
  for (std::size_t start = 0; start + block <= values.size(); start += block) {
    std::span<T> b = values.subspan(start, block);
    const int exponent = block_exponent(std::span<const T>(b), static_cast<T>(format_max));
    // Multiplying by a power of two rounds as ldexp does (both round the exact product), without
    // a call per value: a block's amax is at least 1e-4, so its scale stays a normal float.
    const T down = static_cast<T>(power_of_two(-exponent)),
            up = static_cast<T>(power_of_two(exponent));
    for (T& v : b) v = static_cast<T>(from_code(to_code(v * down))) * up;
  }
}

}  // namespace

void round_trip_e4m3(std::span<float> values, std::size_t block) {
  round_trip(values, block, kE4m3Max, float_to_e4m3, e4m3_to_float);
}

void round_trip_e2m1(std::span<float> values, std::size_t block) {
  round_trip(values, block, kE2m1Max, float_to_e2m1, e2m1_to_float);
}

namespace {

// `magnitude` (at most 448) rounded to e4m3's grid, ties to even: what e4m3_code_of and
// e4m3_to_float give, without a call per value (the activations' quantisation was a tenth of a
// decoded token in ldexp). The grid's step is 2^(exponent - 3) for a magnitude in
// [2^exponent, 2^(exponent + 1)), 2^-9 below 2^-6; adding 2^(step's exponent + 52) leaves exactly
// the bits above the step, rounded to nearest even by the FPU, and subtracting it again is exact.
double e4m3_nearest(double magnitude) {
  const int exponent =
      static_cast<int>((std::bit_cast<std::uint64_t>(magnitude) >> 52) & 0x7FF) - 1023;
  const double shift = power_of_two(std::max(exponent, -6) - 3 + 52);
  return std::min((magnitude + shift) - shift, 448.0);
}

// round_trip for e4m3 in double: the same scales and roundings. Multiplying by a power of two is
// exact here (the scaled values are in e4m3's range; one too small for a normal double rounds to
// 0 either way).
void round_trip_e4m3_doubles(std::span<double> values, std::size_t block,
                             std::vector<int>* exponents) {
  if (exponents) exponents->clear();
  for (std::size_t start = 0; start + block <= values.size(); start += block) {
    std::span<double> b = values.subspan(start, block);
    const int exponent = block_exponent(std::span<const double>(b), double{kE4m3Max});
    if (exponents) exponents->push_back(exponent);
    const double down = power_of_two(-exponent), up = power_of_two(exponent);
    for (double& v : b) v = std::copysign(e4m3_nearest(std::fabs(v) * down), v) * up;
  }
}

}  // namespace

void round_trip_e4m3(std::span<double> values, std::size_t block) {
  round_trip_e4m3_doubles(values, block, nullptr);
}

void round_trip_e4m3(std::span<double> values, std::size_t block, std::vector<int>& exponents) {
  round_trip_e4m3_doubles(values, block, &exponents);
}

void round_trip_e4m3_by_codes(std::span<double> values, std::size_t block) {
  round_trip(values, block, kE4m3Max, e4m3_code_of, e4m3_to_float);
}

void round_trip_e2m1(std::span<double> values, std::size_t block) {
  round_trip(values, block, kE2m1Max, e2m1_code_of, e2m1_to_float);
}

const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (unsigned c = 0; c < 256; ++c) t[c] = e4m3_to_float(static_cast<std::uint8_t>(c));
    return t;
  }();
  return table;
}

const std::array<float, 16>& e2m1_table() {
  static const std::array<float, 16> table = [] {
    std::array<float, 16> t{};
    for (unsigned c = 0; c < 16; ++c) t[c] = e2m1_to_float(static_cast<std::uint8_t>(c));
    return t;
  }();
  return table;
}

}  // namespace warren::inference::formats
