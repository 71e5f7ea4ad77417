// The cache's compact formats (src/kv_cache.hpp): a row decodes to exactly what the model's own
// quantisation keeps of it, in the bytes the architecture gives, and the window drops its oldest
// rows.
#include "kv_cache.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "formats.hpp"

namespace inf = warren::inference;
namespace f = warren::inference::formats;

namespace {

// A row of `dims` values of mixed magnitudes (each block its own scale), zeros and a negative
// zero among them.
std::vector<double> random_row(std::size_t dims, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> row(dims);
  for (std::size_t i = 0; i < dims; ++i)
    row[i] = normal(rng) * std::ldexp(1.0, int(i / 64) * 3 - 9);
  row[3] = 0.0;
  row[70] = -0.0;
  return row;
}

// `row` encoded in `format` and decoded again.
std::vector<double> through(const inf::RowFormat& format, const std::vector<double>& row) {
  std::vector<std::uint8_t> bytes(format.bytes());
  format.encode(row, bytes.data());
  std::vector<double> got(format.dims());
  format.decode(bytes.data(), got);
  return got;
}

void expect_same_bits(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::bit_cast<std::uint64_t>(got[i]), std::bit_cast<std::uint64_t>(want[i]))
        << "dim " << i << ": " << got[i] << " against " << want[i];
}

TEST(KvCache, AKvRowIsItsRoundTripIn584Bytes) {
  const inf::RowFormat format(inf::RowKind::Kv, 512, 64);
  EXPECT_EQ(format.bytes(), 584u);  // 448 codes + 7 scales + 64 BF16, padded to 8
  for (unsigned seed = 1; seed <= 20; ++seed) {
    const std::vector<double> row = random_row(512, seed);
    std::vector<double> want = row;
    f::round_trip_e4m3_by_codes(std::span<double>(want).first(448), 64);
    for (std::size_t i = 448; i < 512; ++i)
      want[i] = f::bf16_to_float(f::float_to_bf16(static_cast<float>(want[i])));
    expect_same_bits(through(format, row), want);
  }
}

TEST(KvCache, AnIndexerKeyIsItsE2m1RoundTripIn68Bytes) {
  const inf::RowFormat format(inf::RowKind::IndexerKey, 128);
  EXPECT_EQ(format.bytes(), 68u);  // 64 bytes of nibbles + 4 scales
  for (unsigned seed = 1; seed <= 20; ++seed) {
    const std::vector<double> row = random_row(128, seed);
    std::vector<double> want = row;
    f::round_trip_e2m1(want, 32);
    expect_same_bits(through(format, row), want);
  }
}

TEST(KvCache, TheWindowKeepsTheLastRowsOldestFirst) {
  const inf::RowFormat format(inf::RowKind::Kv, 128, 64);
  inf::PackedRows window(format, 3), all(format);
  for (int r = 0; r < 5; ++r) {
    const std::vector<double> row(128, r + 1.0);  // exact in both formats
    window.push(row);
    all.push(row);
  }
  EXPECT_EQ(window.size(), 3u);
  EXPECT_EQ(window.bytes(), 3 * format.bytes());
  EXPECT_EQ(all.size(), 5u);
  const std::vector<double> rows = window.decode_all();
  ASSERT_EQ(rows.size(), 3u * 128);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(rows[static_cast<std::size_t>(r) * 128], r + 3.0);        // an e4m3 dim
    EXPECT_EQ(rows[static_cast<std::size_t>(r) * 128 + 127], r + 3.0);  // a BF16 dim
  }
  std::vector<double> first(128);
  all.decode(0, first);
  EXPECT_EQ(first[0], 1.0);
}

}  // namespace
