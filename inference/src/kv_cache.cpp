#include "kv_cache.hpp"

#include <bit>
#include <cmath>

#include "formats.hpp"

namespace warren::inference {

namespace {

constexpr std::size_t kKvBlock = 64, kKeyBlock = 32;

// 2^exponent exactly (a block scale's exponent is within [-127, 127]).
double power_of_two(int exponent) {
  return std::bit_cast<double>(static_cast<std::uint64_t>(exponent + 1023) << 52);
}

std::size_t kv_row_bytes(std::size_t dims, std::size_t rope_dims) {
  const std::size_t nope = dims - rope_dims;
  return (nope + nope / kKvBlock + 2 * rope_dims + 7) / 8 * 8;
}

}  // namespace

RowFormat::RowFormat(RowKind kind, std::size_t dims, std::size_t rope_dims)
    : kind_(kind),
      dims_(dims),
      rope_dims_(rope_dims),
      bytes_(kind == RowKind::Kv ? kv_row_bytes(dims, rope_dims) : dims / 2 + dims / kKeyBlock) {}

void RowFormat::encode(std::span<const double> row, std::uint8_t* out) const {
  std::fill(out, out + bytes_, std::uint8_t{0});
  const std::size_t block = kind_ == RowKind::Kv ? kKvBlock : kKeyBlock;
  const std::size_t quantised = kind_ == RowKind::Kv ? dims_ - rope_dims_ : dims_;
  const double format_max = kind_ == RowKind::Kv ? formats::kE4m3Max : formats::kE2m1Max;
  // The codes, then one e8m0 scale per block after them.
  std::uint8_t* scales = out + (kind_ == RowKind::Kv ? quantised : quantised / 2);
  for (std::size_t b = 0; b * block < quantised; ++b) {
    const std::span<const double> values = row.subspan(b * block, block);
    const int exponent = formats::block_scale_exponent(values, format_max);
    scales[b] = formats::e8m0_of_exponent(exponent);
    const double down = power_of_two(-exponent);
    for (std::size_t i = 0; i < block; ++i) {
      const std::size_t at = b * block + i;
      if (kind_ == RowKind::Kv)
        out[at] = formats::double_to_e4m3(values[i] * down);
      else
        out[at / 2] |= static_cast<std::uint8_t>(formats::double_to_e2m1(values[i] * down)
                                                 << (at % 2 ? 4 : 0));
    }
  }
  if (kind_ != RowKind::Kv) return;
  std::uint8_t* rope = scales + quantised / kKvBlock;
  for (std::size_t i = 0; i < rope_dims_; ++i) {
    const std::uint16_t bits = formats::float_to_bf16(static_cast<float>(row[quantised + i]));
    rope[2 * i] = static_cast<std::uint8_t>(bits & 0xFF);
    rope[2 * i + 1] = static_cast<std::uint8_t>(bits >> 8);
  }
}

void RowFormat::decode(const std::uint8_t* in, std::span<double> row) const {
  const std::size_t block = kind_ == RowKind::Kv ? kKvBlock : kKeyBlock;
  const std::size_t quantised = kind_ == RowKind::Kv ? dims_ - rope_dims_ : dims_;
  const std::uint8_t* scales = in + (kind_ == RowKind::Kv ? quantised : quantised / 2);
  const auto& e4m3 = formats::e4m3_table();
  const auto& e2m1 = formats::e2m1_table();
  for (std::size_t b = 0; b * block < quantised; ++b) {
    const double scale = power_of_two(static_cast<int>(scales[b]) - 127);
    for (std::size_t at = b * block; at < (b + 1) * block; ++at)
      row[at] =
          (kind_ == RowKind::Kv ? e4m3[in[at]] : e2m1[(in[at / 2] >> (at % 2 ? 4 : 0)) & 0xF]) *
          scale;
  }
  if (kind_ != RowKind::Kv) return;
  const std::uint8_t* rope = scales + quantised / kKvBlock;
  for (std::size_t i = 0; i < rope_dims_; ++i)
    row[quantised + i] =
        formats::bf16_to_float(static_cast<std::uint16_t>(rope[2 * i] | (rope[2 * i + 1] << 8)));
}

PackedRows::PackedRows(RowFormat format, std::size_t capacity)
    : format_(format), capacity_(capacity) {}

void PackedRows::push(std::span<const double> row) {
  const std::size_t bytes = format_.bytes();
  if (capacity_ > 0 && count_ == capacity_) {  // full: the oldest row's slot takes this one
    format_.encode(row, data_.data() + first_ * bytes);
    first_ = (first_ + 1) % capacity_;
    return;
  }
  data_.resize((count_ + 1) * bytes);
  format_.encode(row, data_.data() + count_ * bytes);
  ++count_;
}

void PackedRows::decode(std::size_t i, std::span<double> row) const {
  const std::size_t slot = capacity_ > 0 ? (first_ + i) % capacity_ : i;
  format_.decode(data_.data() + slot * format_.bytes(), row);
}

std::vector<double> PackedRows::decode_all() const {
  const std::size_t dims = format_.dims();
  std::vector<double> rows(count_ * dims);
  for (std::size_t i = 0; i < count_; ++i) decode(i, {rows.data() + i * dims, dims});
  return rows;
}

}  // namespace warren::inference
