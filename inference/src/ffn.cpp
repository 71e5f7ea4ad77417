// The FFN (mixture of experts), the hyper-connections around each sublayer, and the head.
#include <cmath>

#include "forward.hpp"

namespace warren::inference {

namespace {

// One SwiGLU expert with V4's clamps: w2(silu(min(w1 x, limit)) * clamp(w3 x, -limit, limit)).
std::vector<double> expert(const ExpertWeights& w, std::span<const double> x, double limit) {
  const auto inner = static_cast<std::size_t>(w.w1.out());
  std::vector<double> gate(inner), up(inner), out(static_cast<std::size_t>(w.w2.out()));
  w.w1.apply(x, gate, true);
  w.w3.apply(x, up, true);
  for (std::size_t i = 0; i < inner; ++i) {
    const double g = std::min<double>(gate[i], limit);
    const double u = std::clamp<double>(up[i], -limit, limit);
    gate[i] = g * sigmoid(g) * u;
  }
  w.w2.apply(gate, out, true);
  return out;
}

}  // namespace

std::vector<double> moe_block(const Config& c, const FfnWeights& w, std::span<const double> x,
                              std::int32_t token) {
  const auto E = static_cast<std::size_t>(c.n_routed_experts);
  const auto K = static_cast<std::size_t>(c.num_experts_per_tok);
  // Scores sqrt(softplus(gate x)); the choice by the token's hash (the first layers) or the top
  // k of score + bias; the weights the unbiased scores of the chosen, normalised, scaled.
  std::vector<double> z(E);
  w.gate.apply(x, z, false);
  std::vector<double> scores(E), biased(E);
  for (std::size_t e = 0; e < E; ++e) {
    scores[e] = std::sqrt(softplus(z[e]));
    biased[e] = scores[e] + (w.bias.empty() ? 0.0 : w.bias[e]);
  }
  std::vector<std::int64_t> chosen;
  if (w.tid2eid)
    chosen.assign(w.tid2eid + static_cast<std::size_t>(token) * K,
                  w.tid2eid + (static_cast<std::size_t>(token) + 1) * K);
  else
    chosen = top_k(biased, static_cast<std::int64_t>(K));
  std::vector<double> weights;
  double total = 0;
  for (std::int64_t e : chosen) total += scores[static_cast<std::size_t>(e)];
  for (std::int64_t e : chosen)
    weights.push_back(scores[static_cast<std::size_t>(e)] / (c.norm_topk_prob ? total : 1.0) *
                      c.routed_scaling_factor);

  std::vector<double> sum(static_cast<std::size_t>(c.hidden_size), 0.0);
  for (std::size_t k = 0; k < chosen.size(); ++k) {
    const auto y = expert(w.experts[static_cast<std::size_t>(chosen[k])], x, c.swiglu_limit);
    for (std::size_t i = 0; i < y.size(); ++i) sum[i] += weights[k] * y[i];
  }
  if (w.shared) {
    const auto y = expert(*w.shared, x, c.swiglu_limit);
    for (std::size_t i = 0; i < y.size(); ++i) sum[i] += y[i];
  }
  return std::vector<double>(sum.begin(), sum.end());
}

namespace {

// mix = (fn . X) / sqrt(mean(X^2) + eps): `rows` values from the flattened streams.
std::vector<double> stream_mix(const Config& c, std::span<const float> fn,
                               std::span<const double> streams, std::size_t rows) {
  double square = 0;
  for (double v : streams) square += v * v;
  const double r = 1.0 / std::sqrt(square / static_cast<double>(streams.size()) + c.rms_norm_eps);
  std::vector<double> mix(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    double dot = 0;
    for (std::size_t j = 0; j < streams.size(); ++j)
      dot += static_cast<double>(fn[i * streams.size() + j]) * streams[j];
    mix[i] = dot * r;
  }
  return mix;
}

// sum_j pre_j X_j, normed with `norm`.
std::vector<double> collapse(const Config& c, const std::vector<double>& pre,
                             std::span<const double> streams, std::span<const float> norm) {
  const auto D = static_cast<std::size_t>(c.hidden_size);
  std::vector<double> h(D);
  for (std::size_t i = 0; i < D; ++i) {
    double v = 0;
    for (std::size_t j = 0; j < pre.size(); ++j) v += pre[j] * streams[j * D + i];
    h[i] = v;
  }
  rms_norm(h, norm, c.rms_norm_eps);
  return h;
}

}  // namespace

void hyper_connected(const Config& c, const HyperWeights& w, std::span<const float> norm,
                     std::vector<double>& streams,
                     const std::function<std::vector<double>(std::span<const double>)>& sublayer) {
  const auto hc = static_cast<std::size_t>(c.hc_mult), D = static_cast<std::size_t>(c.hidden_size);
  const auto mix = stream_mix(c, w.fn, streams, 2 * hc + hc * hc);
  std::vector<double> pre(hc), post(hc);
  for (std::size_t j = 0; j < hc; ++j) {
    pre[j] = sigmoid(mix[j] * w.scale[0] + w.base[j]) + c.hc_eps;
    post[j] = 2 * sigmoid(mix[hc + j] * w.scale[1] + w.base[hc + j]);
  }
  // The mixing matrix C[j][k] (stream j into stream k): softmax over each row, then Sinkhorn
  // normalisation towards doubly stochastic, columns first.
  std::vector<double> C(hc * hc);
  for (std::size_t j = 0; j < hc; ++j) {
    double top = -INFINITY, total = 0;
    for (std::size_t k = 0; k < hc; ++k) {
      C[j * hc + k] = mix[2 * hc + j * hc + k] * w.scale[2] + w.base[2 * hc + j * hc + k];
      top = std::max(top, C[j * hc + k]);
    }
    for (std::size_t k = 0; k < hc; ++k) total += C[j * hc + k] = std::exp(C[j * hc + k] - top);
    for (std::size_t k = 0; k < hc; ++k) C[j * hc + k] = C[j * hc + k] / total + c.hc_eps;
  }
  auto normalise_columns = [&] {
    for (std::size_t k = 0; k < hc; ++k) {
      double sum = 0;
      for (std::size_t j = 0; j < hc; ++j) sum += C[j * hc + k];
      for (std::size_t j = 0; j < hc; ++j) C[j * hc + k] /= sum + c.hc_eps;
    }
  };
  normalise_columns();
  for (std::int64_t iter = 1; iter < c.hc_sinkhorn_iters; ++iter) {
    for (std::size_t j = 0; j < hc; ++j) {
      double sum = 0;
      for (std::size_t k = 0; k < hc; ++k) sum += C[j * hc + k];
      for (std::size_t k = 0; k < hc; ++k) C[j * hc + k] /= sum + c.hc_eps;
    }
    normalise_columns();
  }

  const auto y = sublayer(collapse(c, pre, streams, norm));
  std::vector<double> next(hc * D);
  for (std::size_t k = 0; k < hc; ++k)
    for (std::size_t i = 0; i < D; ++i) {
      double v = post[k] * y[i];
      for (std::size_t j = 0; j < hc; ++j) v += C[j * hc + k] * streams[j * D + i];
      next[k * D + i] = v;
    }
  streams = std::move(next);
}

std::vector<double> head_block(const Config& c, const ModelWeights& w,
                               std::span<const double> streams) {
  const auto hc = static_cast<std::size_t>(c.hc_mult);
  const auto mix = stream_mix(c, w.hc_head_fn, streams, hc);
  std::vector<double> pre(hc);
  for (std::size_t j = 0; j < hc; ++j)
    pre[j] = sigmoid(mix[j] * w.hc_head_scale[0] + w.hc_head_base[j]) + c.hc_eps;
  const auto h = collapse(c, pre, streams, w.norm);
  std::vector<double> logits(static_cast<std::size_t>(c.vocab_size));
  w.head.apply(h, logits, false);
  return logits;
}

}  // namespace warren::inference
