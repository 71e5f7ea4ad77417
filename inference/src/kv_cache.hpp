// What a sequence keeps of each token, in the compact formats of docs/v4-architecture.md ("KV
// cache"): rows of bytes, decoded to doubles only while a token's attention reads them. The
// formats are the model's own quantisation, so a row decodes to exactly the values the reference
// computes with (formats' round trips), and storing it loses nothing the model keeps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace warren::inference {

enum class RowKind {
  // A KV row (a window row or a compressed entry): the no-RoPE dims as e4m3 in blocks of 64, then
  // the blocks' e8m0 scales, then the RoPE dims as BF16, padded to 8 bytes: 448 + 7 + 128, 584
  // bytes for V4's 512 dims.
  Kv,
  // A lightning-indexer key: e2m1 two a byte (the even dim in the low nibble), then an e8m0 scale
  // per 32 dims: 64 + 4, 68 bytes for 128 dims.
  IndexerKey,
};

class RowFormat {
 public:
  RowFormat(RowKind kind, std::size_t dims, std::size_t rope_dims = 0);
  std::size_t dims() const { return dims_; }
  std::size_t bytes() const { return bytes_; }
  // Quantises `row` [dims] as the model does and writes it to `out` [bytes()].
  void encode(std::span<const double> row, std::uint8_t* out) const;
  // The values encode kept: formats::round_trip_e4m3 (blocks of 64) and BF16 rounding of a KV
  // row, formats::round_trip_e2m1 (blocks of 32) of a key.
  void decode(const std::uint8_t* in, std::span<double> row) const;

 private:
  RowKind kind_;
  std::size_t dims_, rope_dims_, bytes_;
};

// Rows of one format in one buffer, oldest first; with a capacity, a ring that drops the oldest
// (the sliding window). A plain value: copying it copies the rows, which is all a snapshot of
// the cache at a token needs.
class PackedRows {
 public:
  explicit PackedRows(RowFormat format, std::size_t capacity = 0);  // 0: no limit
  const RowFormat& format() const { return format_; }
  std::size_t size() const { return count_; }
  void push(std::span<const double> row);
  // Row `i` (0: the oldest kept) decoded into `row` [dims].
  void decode(std::size_t i, std::span<double> row) const;
  // Every row decoded, oldest first: [size(), dims].
  std::vector<double> decode_all() const;
  std::uint64_t bytes() const { return count_ * format_.bytes(); }

 private:
  RowFormat format_;
  std::size_t capacity_, first_ = 0, count_ = 0;
  std::vector<std::uint8_t> data_;
};

}  // namespace warren::inference
