#include "weights.hpp"

#include <algorithm>
#include <cstring>

#include "formats.hpp"

namespace warren::inference {

Result<Linear> Linear::bind(const Checkpoint& checkpoint, const std::string& name, ThreadPool* pool,
                            Kernels kernels) {
  auto weight = checkpoint.tensor(name + ".weight");
  if (!weight) return tl::unexpected(weight.error());
  Linear linear;
  linear.pool_ = pool;
  linear.weight_ = weight->data.data();
  linear.out_ = weight->shape[0];
  linear.in_ = weight->shape[1];
  linear.kernels_ = row_kernels(kernels);
  switch (weight->dtype) {
    case DType::BF16:
      linear.format_ = WeightFormat::BF16;
      if (linear.in_ % 16 != 0) linear.kernels_ = nullptr;  // the kernels' lanes
      return linear;
    case DType::F8_E4M3:
      linear.format_ = WeightFormat::FP8;
      break;
    case DType::I8:
      linear.format_ = WeightFormat::FP4;
      linear.in_ *= 2;  // two values a byte
      break;
    default:
      return tl::unexpected(Error{"tensor " + name + ".weight: not a linear layer's dtype"});
  }
  auto scale = checkpoint.tensor(name + ".scale");
  if (!scale) return tl::unexpected(scale.error());
  linear.scale_ = reinterpret_cast<const std::uint8_t*>(scale->data.data());
  if (linear.in_ % (linear.format_ == WeightFormat::FP4 ? 32 : 16) != 0) linear.kernels_ = nullptr;
  return linear;
}

void Linear::row(std::int64_t r, std::span<float> values) const {
  const auto in = static_cast<std::size_t>(in_);
  switch (format_) {
    case WeightFormat::BF16: {
      const auto* w = reinterpret_cast<const std::uint16_t*>(weight_) + r * in_;
      for (std::size_t i = 0; i < in; ++i) values[i] = formats::bf16_to_float(w[i]);
      break;
    }
    case WeightFormat::FP8: {
      const auto* w = reinterpret_cast<const std::uint8_t*>(weight_) + r * in_;
      const std::int64_t scale_columns = (in_ + 127) / 128;
      const std::uint8_t* scales = scale_ + (r / 128) * scale_columns;
      const auto& table = formats::e4m3_table();
      for (std::size_t block = 0; block * 128 < in; ++block) {
        const float scale = formats::e8m0_to_float(scales[block]);
        for (std::size_t i = block * 128; i < std::min(in, block * 128 + 128); ++i)
          values[i] = table[w[i]] * scale;
      }
      break;
    }
    case WeightFormat::FP4: {
      const auto* w = reinterpret_cast<const std::uint8_t*>(weight_) + r * in_ / 2;
      const std::uint8_t* scales = scale_ + r * (in_ / 32);
      const auto& table = formats::e2m1_table();
      for (std::size_t block = 0; block * 32 < in; ++block) {
        const float scale = formats::e8m0_to_float(scales[block]);
        for (std::size_t i = block * 32; i < block * 32 + 32; i += 2) {
          values[i] = table[w[i / 2] & 0x0F] * scale;  // the low nibble first
          values[i + 1] = table[w[i / 2] >> 4] * scale;
        }
      }
      break;
    }
  }
}

// y[r - begin] = dot(r) for the rows [begin, end), split among the pool's threads.
template <class Dot>
void Linear::for_rows(std::int64_t begin, std::int64_t end, Dot dot, std::span<double> y) const {
  auto rows = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t r = begin + from; r < begin + to; ++r)
      y[static_cast<std::size_t>(r - begin)] = dot(r);
  };
  if (pool_)
    pool_->parallel_for(end - begin, rows);
  else
    rows(0, end - begin);
}

void Linear::apply(std::span<const double> x, std::span<double> y, bool quantise_input) const {
  apply_rows(x, y, 0, out_, quantise_input);
}

void Linear::apply_rows(std::span<const double> x, std::span<double> y, std::int64_t begin,
                        std::int64_t end, bool quantise_input) const {
  std::vector<double> input(x.begin(), x.begin() + in_);
  // An FP4 layer's quantised input goes to the integer kernels (kernels.hpp, QuantisedInput).
  if (kernels_ && quantise_input && format_ == WeightFormat::FP4 && in_ % 128 == 0) {
    std::vector<int> exponents;
    formats::round_trip_e4m3(input, 128, exponents);
    QuantisedInput quantised;
    quantised_input(input, exponents, quantised);
    return for_rows(
        begin, end,
        [&](std::int64_t r) {
          return kernels_->fp4_quantised(
              reinterpret_cast<const std::uint8_t*>(weight_) + r * in_ / 2, scale_ + r * (in_ / 32),
              quantised, in_);
        },
        y);
  }
  if (quantise_input) formats::round_trip_e4m3(input, 128);
  if (kernels_) return apply_fast(input, y, begin, end);
  // Each row is one thread's, summed in the same order whatever their number.
  return for_rows(
      begin, end,
      [&](std::int64_t r) {
        thread_local std::vector<float> values;
        values.resize(static_cast<std::size_t>(in_));
        row(r, values);
        double sum = 0;
        for (std::size_t i = 0; i < values.size(); ++i) sum += values[i] * input[i];
        return sum;
      },
      y);
}

// The fast kernels (kernels.hpp), rows split among the pool's threads as the reference path's.
void Linear::apply_fast(std::span<const double> input, std::span<double> y, std::int64_t begin,
                        std::int64_t end) const {
  std::vector<double> ordered;
  const double* x = input.data();
  if (format_ == WeightFormat::FP4) {  // only FP4 reads its input reordered
    ordered.resize(input.size());
    fp4_order(input.data(), ordered.data(), in_);
    x = ordered.data();
  }
  const std::int64_t scale_columns = (in_ + 127) / 128;
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(weight_);
  for_rows(
      begin, end,
      [&](std::int64_t r) {
        switch (format_) {
          case WeightFormat::BF16:
            return kernels_->bf16(reinterpret_cast<const std::uint16_t*>(weight_) + r * in_,
                                  nullptr, x, in_);
          case WeightFormat::FP8:
            return kernels_->fp8(bytes + r * in_, scale_ + (r / 128) * scale_columns, x, in_);
          case WeightFormat::FP4:
            return kernels_->fp4(bytes + r * in_ / 2, scale_ + r * (in_ / 32), x, in_);
        }
        return 0.0;
      },
      y);
}

Result<std::vector<float>> read_floats(const Checkpoint& checkpoint, const std::string& name) {
  auto t = checkpoint.tensor(name);
  if (!t) return tl::unexpected(t.error());
  std::vector<float> values;
  if (t->dtype == DType::F32) {
    values.resize(t->data.size() / 4);
    std::memcpy(values.data(), t->data.data(), t->data.size());
  } else if (t->dtype == DType::BF16) {
    const auto* bits = reinterpret_cast<const std::uint16_t*>(t->data.data());
    for (std::size_t i = 0; i < t->data.size() / 2; ++i)
      values.push_back(formats::bf16_to_float(bits[i]));
  } else {
    return tl::unexpected(Error{"tensor " + name + ": expected BF16 or F32"});
  }
  return values;
}

}  // namespace warren::inference
