#include "blocks.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include "formats.hpp"

namespace warren::inference {

void rms_norm(std::span<double> x, std::span<const float> weight, double eps) {
  const double r = 1.0 / std::sqrt(dot<double>(x, x) / static_cast<double>(x.size()) + eps);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = x[i] * r * (weight.empty() ? 1.0 : weight[i]);
}

Rotary::Rotary(const Config& c, bool compressed_layer) {
  const auto dims = static_cast<std::size_t>(c.qk_rope_head_dim);
  const double theta = compressed_layer ? c.compress_rope_theta : c.rope_theta;
  for (std::size_t i = 0; i < dims / 2; ++i)
    freqs_.push_back(1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dims)));
  if (!compressed_layer) return;
  // The dim whose wavelength turns `rotations` times over the original context.
  auto correction_dim = [&](double rotations) {
    return static_cast<double>(dims) *
           std::log(static_cast<double>(c.rope_original_max_position) /
                    (rotations * 2 * std::numbers::pi)) /
           (2 * std::log(theta));
  };
  const double low = std::max(std::floor(correction_dim(c.rope_beta_fast)), 0.0);
  double high =
      std::min(std::ceil(correction_dim(c.rope_beta_slow)), static_cast<double>(dims - 1));
  if (high == low) high += 0.001;
  for (std::size_t i = 0; i < freqs_.size(); ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    freqs_[i] = freqs_[i] / c.rope_factor * ramp + freqs_[i] * (1 - ramp);
  }
}

void Rotary::apply(std::span<double> x, std::int64_t pos, bool inverse) const {
  for (std::size_t i = 0; i < freqs_.size(); ++i) {
    const double angle = (inverse ? -1.0 : 1.0) * static_cast<double>(pos) * freqs_[i];
    const double c = std::cos(angle), s = std::sin(angle);
    const double a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c - b * s;
    x[2 * i + 1] = a * s + b * c;
  }
}

void hadamard(std::span<double> x) {
  const std::size_t n = x.size();
  for (std::size_t half = 1; half < n; half *= 2)
    for (std::size_t i = 0; i < n; i += 2 * half)
      for (std::size_t j = i; j < i + half; ++j) {
        const double a = x[j], b = x[j + half];
        x[j] = a + b;
        x[j + half] = a - b;
      }
  const double scale = 1.0 / std::sqrt(static_cast<double>(n));
  for (double& v : x) v *= scale;
}

std::vector<std::int64_t> top_k(std::span<const double> values, std::int64_t k) {
  std::vector<std::int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  const auto n = std::min<std::int64_t>(k, static_cast<std::int64_t>(values.size()));
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](auto a, auto b) {
    const double va = values[static_cast<std::size_t>(a)], vb = values[static_cast<std::size_t>(b)];
    return va != vb ? va > vb : a < b;
  });
  order.resize(static_cast<std::size_t>(n));
  return order;
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

double softplus(double x) {
  return x > 20 ? x : std::log1p(std::exp(x));
}

}  // namespace warren::inference
