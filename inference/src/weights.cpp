#include "weights.hpp"

#include <algorithm>
#include <cmath>
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

// From how many inputs an FP4 layer's quantised inputs go to the tile kernel: below, most of its
// lanes would hold nothing.
constexpr std::int64_t kFewestForTile = 6;

// The rows [begin, end) split among the pool's threads, `group` rows at a time (the last group
// may be shorter), for `tokens` inputs; `groups_of(r, rows, first, n, values)` computes rows
// [r, r + rows)'s values for the inputs [first, first + n), n at most `tile` (kTokenTile unless
// given, at most kTileInputs), row r + k's input t at values[k * kTileInputs + t], stored at
// y[t * (end - begin) + r - begin]. Each thread goes over its rows once for every tile of inputs,
// which stays in its core's cache meanwhile (12 inputs of 2048 doubles: 192 KiB); row after row,
// the other way round, a prompt's inputs came from memory again for every row.
template <class GroupsOf>
void Linear::for_row_groups(std::int64_t begin, std::int64_t end, std::int64_t tokens,
                            std::int64_t group, GroupsOf groups_of, std::span<double> y,
                            std::int64_t tile) const {
  const std::int64_t stride = end - begin;
  auto groups = [&](std::int64_t from, std::int64_t to) {
    double values[kMostRowsAGroup * kTileInputs];
    for (std::int64_t first = 0; first < tokens; first += tile) {
      const std::int64_t n = std::min(tile, tokens - first);
      for (std::int64_t r = begin + from * group; r < std::min(end, begin + to * group);
           r += group) {
        const std::int64_t rows = std::min(group, end - r);
        groups_of(r, rows, first, static_cast<int>(n), values);
        for (std::int64_t k = 0; k < rows; ++k)
          for (std::int64_t t = 0; t < n; ++t)
            y[static_cast<std::size_t>((first + t) * stride + r + k - begin)] =
                values[k * kTileInputs + t];
      }
    }
  };
  each_range(pool_, (stride + group - 1) / group, groups);
}

// for_row_groups a row at a time: `rows_of(r, first, n, values)`.
template <class RowsOf>
void Linear::for_rows(std::int64_t begin, std::int64_t end, std::int64_t tokens, RowsOf rows_of,
                      std::span<double> y, std::int64_t tile) const {
  for_row_groups(
      begin, end, tokens, 1,
      [&](std::int64_t r, std::int64_t, std::int64_t first, int n, double* values) {
        rows_of(r, first, n, values);
      },
      y, tile);
}

void Linear::apply(std::span<const double> x, std::span<double> y, bool quantise_input,
                   std::int64_t tokens) const {
  apply_rows(x, y, 0, out_, quantise_input, tokens);
}

void Linear::apply_rows(std::span<const double> x, std::span<double> y, std::int64_t begin,
                        std::int64_t end, bool quantise_input, std::int64_t tokens) const {
  const auto T = static_cast<std::size_t>(tokens), in = static_cast<std::size_t>(in_);
  std::vector<double> input(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(T * in));
  const auto token = [&](std::size_t t) { return std::span<double>(input).subspan(t * in, in); };
  // An FP4 or FP8 layer's quantised input goes to the integer kernels (kernels.hpp,
  // QuantisedInput).
  if (kernels_ && quantise_input && format_ != WeightFormat::BF16 && in_ % 128 == 0) {
    std::vector<QuantisedInput> quantised(T);
    std::vector<const QuantisedInput*> inputs;
    for (std::size_t t = 0; t < T; ++t) inputs.push_back(&quantised[t]);
    // Narrow inputs (and FP4's pieces) only for the one-input kernels that read them (kernels.hpp,
    // QuantisedInput): FP4 rows below a tile, FP8 alone (several go through doubles).
    const bool fp4 = format_ == WeightFormat::FP4;
    const bool find_narrow = fp4 ? tokens < kFewestForTile : tokens == 1;
    each_index(tokens > 1 ? pool_ : nullptr, T, [&](std::size_t t) {
      std::vector<int> exponents;
      formats::round_trip_e4m3(token(t), 128, exponents);
      quantised_input(token(t), exponents, quantised[t],
                      fp4 ? QuantisedFor::Fp4Rows : QuantisedFor::Fp8Rows, find_narrow,
                      find_narrow);
    });
    if (fp4 && tokens >= kFewestForTile) return apply_tiles(inputs, y, begin, end);
    if (!fp4 && tokens >= kBlockInputs) return apply_blocks(inputs, y, begin, end);
    return for_rows(
        begin, end, tokens,
        [&](std::int64_t r, std::int64_t first, int n, double* values) {
          const auto* bytes = reinterpret_cast<const std::uint8_t*>(weight_);
          if (format_ == WeightFormat::FP8)
            return kernels_->fp8_quantised_rows(bytes + r * in_, scale_ + (r / 128) * (in_ / 128),
                                                inputs.data() + first, n, in_, values);
          kernels_->fp4_quantised_rows(bytes + r * in_ / 2, scale_ + r * (in_ / 32),
                                       inputs.data() + first, n, in_, values);
        },
        y);
  }
  if (quantise_input)
    each_index(tokens > 1 ? pool_ : nullptr, T,
               [&](std::size_t t) { formats::round_trip_e4m3(token(t), 128); });
  if (kernels_) return apply_fast(input, y, begin, end, tokens);
  // Each row is one thread's, summed in the same order whatever their number.
  return for_rows(
      begin, end, tokens,
      [&](std::int64_t r, std::int64_t first, int n, double* sums) {
        thread_local std::vector<float> values;
        values.resize(in);
        row(r, values);
        for (int t = 0; t < n; ++t) {
          const double* x = input.data() + static_cast<std::size_t>(first + t) * in;
          double sum = 0;
          for (std::size_t i = 0; i < in; ++i) sum += values[i] * x[i];
          sums[t] = sum;
        }
      },
      y);
}

// An FP4 layer's prompt: its quantised inputs in tiles of kTileInputs (QuantisedTile), each row
// weighed against a tile at a time by the tile kernel, which sums each input in its own lane: the
// same bits as the rows kernel's, three inputs at a time, at 20-23 against 14 G products a second
// on a Zen 3 core (inference_bench's RowKernelTile and RowKernelInputs; docs/benchmarks.md); two
// rows at a time, a fifth to a third more.
void Linear::apply_tiles(std::span<const QuantisedInput* const> inputs, std::span<double> y,
                         std::int64_t begin, std::int64_t end) const {
  std::vector<QuantisedTile> tiles((inputs.size() + kTileInputs - 1) / kTileInputs);
  each_index(pool_, tiles.size(), [&](std::size_t i) {
    const std::size_t first = i * kTileInputs;
    quantised_tile(inputs.subspan(first, std::min<std::size_t>(kTileInputs, inputs.size() - first)),
                   in_, tiles[i]);
  });
  // The rows two at a time: the pair kernel reads each input once for both.
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(weight_);
  const std::int64_t row_bytes = in_ / 2, row_scales = in_ / 32;
  for_row_groups(
      begin, end, static_cast<std::int64_t>(inputs.size()), 2,
      [&](std::int64_t r, std::int64_t rows, std::int64_t first, int, double* values) {
        const QuantisedTile& tile = tiles[static_cast<std::size_t>(first / kTileInputs)];
        if (rows == 2)
          return kernels_->fp4_quantised_tile_pair(bytes + r * row_bytes, scale_ + r * row_scales,
                                                   tile, values);
        kernels_->fp4_quantised_tile(bytes + r * row_bytes, scale_ + r * row_scales, tile, values);
      },
      y, kTileInputs);
}

// An FP8 layer's prompt as a matrix product (kernels.hpp, BlockPanel). The inputs' units are laid
// out kBlockInputs at a time (a tile) a 128-block, each thread's rows go kBlockRows at a time (a
// group), and each value is the sum of its blocks' terms added block after block (the one-input
// kernel's order). The loops: a panel of tiles, its blocks, the part's groups, the panel's tiles
// (in the kernel), so that a block of the panel's inputs (120 KiB) and the part's values for the
// panel (at most 120 KiB) stay in the core's L2 for all the part's rows, and a group's block of
// weights, decoded once to doubles, in L1 for the panel's tiles. One core, 120 inputs: 21 G
// products a second, against 11 for the several-inputs kernel with 6 (inference_bench's
// BlockPanel and RowKernelInputs/format:4).
void Linear::apply_blocks(std::span<const QuantisedInput* const> inputs, std::span<double> y,
                          std::int64_t begin, std::int64_t end) const {
  constexpr std::int64_t kPanelTiles = 10;
  const auto tokens = static_cast<std::int64_t>(inputs.size());
  const std::int64_t blocks = in_ / 128, stride = end - begin;
  const std::int64_t tiles = (tokens + kBlockInputs - 1) / kBlockInputs;
  std::vector<double> units(static_cast<std::size_t>(blocks * tiles * kBlockTileValues), 0.0);
  std::vector<double> scales(static_cast<std::size_t>(blocks * tiles * kBlockInputs), 0.0);
  each_index(pool_, static_cast<std::size_t>(tokens), [&](std::size_t token) {
    block_tiles_input(*inputs[token], static_cast<std::int64_t>(token), tiles, in_, units.data(),
                      scales.data());
  });
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(weight_);
  const auto groups_of = [&](std::int64_t from, std::int64_t to) {
    // The part's values for a panel's inputs, kBlockRows consecutive doubles an input a group:
    // added to in place of y, whose inputs lie a multiple of 4 KiB apart in most layers (`stride`
    // rows), so that a tile's 12 fell into the same few cache sets and missed.
    std::vector<double> values(
        static_cast<std::size_t>((to - from) * kPanelTiles * kBlockInputs * kBlockRows));
    for (std::int64_t panel = 0; panel < tiles; panel += kPanelTiles) {
      const std::int64_t panel_inputs =
          std::min(tokens - panel * kBlockInputs, kPanelTiles * kBlockInputs);
      std::fill(values.begin(), values.end(), 0.0);
      for (std::int64_t block = 0; block < blocks; ++block) {
        const std::int64_t at = block * tiles + panel;
        const BlockInputs inputs_of_panel{.units = units.data() + at * kBlockTileValues,
                                          .input_scale = scales.data() + at * kBlockInputs,
                                          .inputs = static_cast<int>(panel_inputs)};
        for (std::int64_t g = from; g < to; ++g) {
          const std::int64_t first = begin + g * kBlockRows;
          BlockGroup group{
              .codes = bytes + first * in_ + block * 128,
              .row_stride = in_,
              .rows = static_cast<int>(std::min<std::int64_t>(kBlockRows, end - first)),
              .out = values.data() + (g - from) * panel_inputs * kBlockRows,
              .out_stride = kBlockRows};
          // The weight's share: 2^(code - 127) times the 2 that QuantisedInput::scale, 2^(e - 10),
          // leaves of the input's unit, 2^(e - 9).
          for (int r = 0; r < group.rows; ++r)
            group.factor[r] = std::ldexp(1.0, scale_[(first + r) / 128 * blocks + block] - 126);
          kernels_->fp8_block_panel(group, inputs_of_panel);
        }
      }
      for (std::int64_t g = from; g < to; ++g) {
        const std::int64_t first = begin + g * kBlockRows;
        const std::int64_t rows = std::min<std::int64_t>(kBlockRows, end - first);
        for (std::int64_t t = 0; t < panel_inputs; ++t)
          std::copy_n(values.data() + ((g - from) * panel_inputs + t) * kBlockRows, rows,
                      y.data() + (panel * kBlockInputs + t) * stride + first - begin);
      }
    }
  };
  each_range(pool_, (stride + kBlockRows - 1) / kBlockRows, groups_of);
}

// A prompt's BF16 and FP8 rows against inputs of doubles as a matrix product in the documented
// order (kernels.hpp, OrderedTile): the inputs laid out lane by lane kBlockInputs at a time (a
// tile), each thread's rows kBlockRows at a time (a group), decoded once for a panel of tiles
// (360 inputs: with 120, decoding took a fifth as long as the products).
void Linear::apply_ordered(std::span<const double> input, std::span<double> y, std::int64_t begin,
                           std::int64_t end, std::int64_t tokens) const {
  constexpr std::int64_t kPanelTiles = 30;
  const std::int64_t chunks = in_ / 64, stride = end - begin;
  const std::int64_t tiles = (tokens + kBlockInputs - 1) / kBlockInputs;
  std::vector<double> x(static_cast<std::size_t>(tiles * in_ * kBlockInputs), 0.0);
  each_index(pool_, static_cast<std::size_t>(tokens), [&](std::size_t token) {
    ordered_tiles_input(input.data() + static_cast<std::int64_t>(token) * in_,
                        static_cast<std::int64_t>(token), in_, x.data());
  });
  const auto groups_of = [&](std::int64_t from, std::int64_t to) {
    std::vector<float> row_values(static_cast<std::size_t>(in_));
    std::vector<double> weights(static_cast<std::size_t>(kBlockRows * in_));
    for (std::int64_t panel = 0; panel < tiles; panel += kPanelTiles)
      for (std::int64_t g = from; g < to; ++g) {
        const std::int64_t first = begin + g * kBlockRows;
        const int rows = static_cast<int>(std::min<std::int64_t>(kBlockRows, end - first));
        std::fill(weights.begin() + rows * in_, weights.end(), 0.0);  // rows past `end`
        for (int r = 0; r < rows; ++r) {  // each weight as the kernels decode it (row())
          row(first + r, row_values);
          for (std::int64_t j = 0; j < 64; ++j)
            for (std::int64_t m = 0; m < chunks; ++m)
              weights[static_cast<std::size_t>((r * 64 + j) * chunks + m)] =
                  row_values[static_cast<std::size_t>(64 * m + j)];
        }
        for (std::int64_t tile = panel; tile < std::min(tiles, panel + kPanelTiles); ++tile)
          kernels_->ordered_tile(
              {.weights = weights.data(),
               .chunks = chunks,
               .rows = rows,
               .out = y.data() + tile * kBlockInputs * stride + first - begin,
               .out_stride = stride},
              x.data() + tile * in_ * kBlockInputs,
              static_cast<int>(std::min<std::int64_t>(kBlockInputs, tokens - tile * kBlockInputs)));
      }
  };
  each_range(pool_, (stride + kBlockRows - 1) / kBlockRows, groups_of);
}

// The fast kernels (kernels.hpp), rows split among the pool's threads as the reference path's.
void Linear::apply_fast(std::span<double> input, std::span<double> y, std::int64_t begin,
                        std::int64_t end, std::int64_t tokens) const {
  if (!float_sums_ && format_ != WeightFormat::FP4 && tokens >= kBlockInputs && in_ % 64 == 0)
    return apply_ordered(input, y, begin, end, tokens);
  if (float_sums_ && in_ % 16 == 0) {
    std::vector<float> ordered(static_cast<std::size_t>(tokens * in_));
    for (std::int64_t t = 0; t < tokens; ++t)
      float_order(input.data() + t * in_, ordered.data() + t * in_, in_);
    const auto* w = reinterpret_cast<const std::uint16_t*>(weight_);
    return for_rows(
        begin, end, tokens,
        [&](std::int64_t r, std::int64_t first, int n, double* values) {
          for (int i = 0; i < n; ++i)
            values[i] = kernels_->bf16_float(w + r * in_, ordered.data() + (first + i) * in_, in_);
        },
        y);
  }
  if (format_ == WeightFormat::FP8 && in_ % 64 == 0) {
    // wo_a: the kernel without conversions, one input at a time, the same bits as fp8_rows'
    // (kernels.hpp, fp8_ordered).
    std::vector<double> ordered(static_cast<std::size_t>(tokens * in_));
    for (std::int64_t t = 0; t < tokens; ++t)
      fp8_order(input.data() + t * in_, ordered.data() + t * in_, in_);
    const std::int64_t scale_columns = (in_ + 127) / 128;
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(weight_);
    return for_rows(
        begin, end, tokens,
        [&](std::int64_t r, std::int64_t first, int n, double* values) {
          for (int i = 0; i < n; ++i)
            values[i] = kernels_->fp8_ordered(bytes + r * in_, scale_ + (r / 128) * scale_columns,
                                              ordered.data() + (first + i) * in_, in_);
        },
        y);
  }
  if (format_ == WeightFormat::FP4) {  // only FP4 reads its input reordered
    std::vector<double> ordered(static_cast<std::size_t>(in_));
    for (std::int64_t t = 0; t < tokens; ++t) {
      fp4_order(input.data() + t * in_, ordered.data(), in_);
      std::copy(ordered.begin(), ordered.end(), input.begin() + t * in_);
    }
  }
  const std::int64_t scale_columns = (in_ + 127) / 128;
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(weight_);
  std::vector<const double*> inputs;
  for (std::int64_t t = 0; t < tokens; ++t) inputs.push_back(input.data() + t * in_);
  for_rows(
      begin, end, tokens,
      [&](std::int64_t r, std::int64_t first, int n, double* values) {
        const double* const* x = inputs.data() + first;
        switch (format_) {
          case WeightFormat::BF16:
            return kernels_->bf16_rows(reinterpret_cast<const std::uint16_t*>(weight_) + r * in_,
                                       nullptr, x, n, in_, values);
          case WeightFormat::FP8:
            return kernels_->fp8_rows(bytes + r * in_, scale_ + (r / 128) * scale_columns, x, n,
                                      in_, values);
          case WeightFormat::FP4:
            for (int i = 0; i < n; ++i)
              values[i] = kernels_->fp4(bytes + r * in_ / 2, scale_ + r * (in_ / 32), x[i], in_);
            return;
        }
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
