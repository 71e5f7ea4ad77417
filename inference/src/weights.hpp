// A checkpoint's tensors as the forward pass uses them: linear layers in their stored format
// (BF16, FP8 e4m3 with 128x128 block scales, FP4 e2m1 with 1x32 scales, kept packed and
// dequantised as they are read) and the small vectors (norms, hyper-connection weights, biases)
// converted to float once.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "thread_pool.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

enum class WeightFormat { BF16, FP8, FP4 };

// y = W x for W [out, in] as stored. `quantise_input`: x is first rounded to FP8 in 1x128 blocks
// with power-of-two scales, as the reference does before its FP8 and FP4 matmuls.
class Linear {
 public:
  Linear() = default;
  // `pool`: the threads its rows are computed on (none: the caller's alone). `kernels`: the
  // fast ones of kernels.hpp, or the reference path.
  static Result<Linear> bind(const Checkpoint& checkpoint, const std::string& name,
                             ThreadPool* pool = nullptr, Kernels kernels = Kernels::Reference);

  std::int64_t out() const { return out_; }
  std::int64_t in() const { return in_; }
  // y = W x for each of `tokens` inputs: x [tokens, in], y [tokens, out]. Each row is read once
  // for all the tokens, and each token's values are those of a call with it alone.
  void apply(std::span<const double> x, std::span<double> y, bool quantise_input,
             std::int64_t tokens = 1) const;
  // Rows [begin, end) of W times x (wo_a's groups, each its own input): y [tokens, end - begin].
  void apply_rows(std::span<const double> x, std::span<double> y, std::int64_t begin,
                  std::int64_t end, bool quantise_input, std::int64_t tokens = 1) const;
  // Row `row` of W, dequantised.
  void row(std::int64_t row, std::span<float> values) const;
  // The threads its rows are split among (null: the caller's alone), and the same layer computed
  // on the caller's thread alone, for work already split among the threads another way.
  ThreadPool* pool() const { return pool_; }
  // The fast kernels its rows go through (nullptr: the reference path).
  const RowKernels* kernels() const { return kernels_; }
  Linear on_caller() const {
    Linear alone = *this;
    alone.pool_ = nullptr;
    return alone;
  }
  // The same BF16 layer summed in float by the fast kernels (kernels.hpp, RowDotFloat): for the
  // head, whose output no later layer quantises. The reference path still sums in double.
  Linear summed_in_float() const {
    Linear head = *this;
    head.float_sums_ = format_ == WeightFormat::BF16;
    return head;
  }

 private:
  void apply_fast(std::span<double> input, std::span<double> y, std::int64_t begin,
                  std::int64_t end, std::int64_t tokens) const;
  void apply_tiles(std::span<const QuantisedInput* const> inputs, std::span<double> y,
                   std::int64_t begin, std::int64_t end) const;
  void apply_blocks(std::span<const QuantisedInput* const> inputs, std::span<double> y,
                    std::int64_t begin, std::int64_t end) const;
  void apply_ordered(std::span<const double> input, std::span<double> y, std::int64_t begin,
                     std::int64_t end, std::int64_t tokens) const;
  // for_rows' inputs a tile unless told: a multiple of every rows kernel's own group.
  static constexpr std::int64_t kTokenTile = 12;
  static_assert(kTokenTile <= kTileInputs);
  // for_row_groups' rows a group at most (the FP4 tile pair kernel's two).
  static constexpr std::int64_t kMostRowsAGroup = 2;
  template <class GroupsOf>
  void for_row_groups(std::int64_t begin, std::int64_t end, std::int64_t tokens, std::int64_t group,
                      GroupsOf groups_of, std::span<double> y,
                      std::int64_t tile = kTokenTile) const;
  template <class RowsOf>
  void for_rows(std::int64_t begin, std::int64_t end, std::int64_t tokens, RowsOf rows_of,
                std::span<double> y, std::int64_t tile = kTokenTile) const;

  WeightFormat format_ = WeightFormat::BF16;
  std::int64_t out_ = 0, in_ = 0;
  const std::byte* weight_ = nullptr;
  // e8m0 codes: FP8 [ceil(out/128), ceil(in/128)]; FP4 [out, in/32].
  const std::uint8_t* scale_ = nullptr;
  ThreadPool* pool_ = nullptr;
  const RowKernels* kernels_ = nullptr;  // nullptr: the reference path
  bool float_sums_ = false;              // summed_in_float
};

// A tensor of BF16 or F32 values as floats.
Result<std::vector<float>> read_floats(const Checkpoint& checkpoint, const std::string& name);

}  // namespace warren::inference
