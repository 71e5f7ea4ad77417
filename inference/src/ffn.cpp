// The FFN (mixture of experts), the hyper-connections around each sublayer, and the head.
#include <algorithm>
#include <cmath>

#include "forward.hpp"
#include "thread_pool.hpp"

namespace warren::inference {

namespace {

// One SwiGLU expert with V4's clamps, w2(silu(min(w1 x, limit)) * clamp(w3 x, -limit, limit)), for
// `tokens` inputs x [tokens, D]: [tokens, D].
std::vector<double> expert(const ExpertWeights& w, std::span<const double> x, std::int64_t tokens,
                           double limit) {
  const auto inner = static_cast<std::size_t>(w.w1.out() * tokens);
  std::vector<double> gate(inner), up(inner), out(static_cast<std::size_t>(w.w2.out() * tokens));
  w.w1.apply(x, gate, true, tokens);
  w.w3.apply(x, up, true, tokens);
  for (std::size_t i = 0; i < inner; ++i) {
    const double g = std::min<double>(gate[i], limit);
    const double u = std::clamp<double>(up[i], -limit, limit);
    gate[i] = g * sigmoid(g) * u;
  }
  w.w2.apply(gate, out, true, tokens);
  return out;
}

// At most this many tokens an expert, the experts are split among the threads (moe_block).
constexpr std::size_t kFewTokens = 4;

// A token's routed experts and their weights.
struct Route {
  std::vector<std::int64_t> chosen;
  std::vector<double> weights;
};

// Scores sqrt(softplus(gate x)); the choice by the token's hash (the first layers) or the top k
// of score + bias; the weights the unbiased scores of the chosen, normalised, scaled.
Route route(const Config& c, const FfnWeights& w, std::span<const double> z, std::int32_t token) {
  const auto E = static_cast<std::size_t>(c.n_routed_experts);
  const auto K = static_cast<std::size_t>(c.num_experts_per_tok);
  std::vector<double> scores(E), biased(E);
  for (std::size_t e = 0; e < E; ++e) {
    scores[e] = std::sqrt(softplus(z[e]));
    biased[e] = scores[e] + (w.bias.empty() ? 0.0 : w.bias[e]);
  }
  Route r;
  if (w.tid2eid)
    r.chosen.assign(w.tid2eid + static_cast<std::size_t>(token) * K,
                    w.tid2eid + (static_cast<std::size_t>(token) + 1) * K);
  else
    r.chosen = top_k(biased, static_cast<std::int64_t>(K));
  double total = 0;
  for (std::int64_t e : r.chosen) total += scores[static_cast<std::size_t>(e)];
  for (std::int64_t e : r.chosen)
    r.weights.push_back(scores[static_cast<std::size_t>(e)] / (c.norm_topk_prob ? total : 1.0) *
                        c.routed_scaling_factor);
  return r;
}

}  // namespace

Batch moe_block(const Config& c, const FfnWeights& w, const Batch& x,
                std::span<const std::int32_t> tokens) {
  const auto E = static_cast<std::size_t>(c.n_routed_experts);
  const auto D = static_cast<std::size_t>(c.hidden_size), T = x.size();
  const std::vector<double> inputs = flatten(x);
  std::vector<double> z(T * E);
  w.gate.apply(inputs, z, false, static_cast<std::int64_t>(T));
  std::vector<Route> routes;
  for (std::size_t t = 0; t < T; ++t)
    routes.push_back(route(c, w, std::span<const double>(z).subspan(t * E, E), tokens[t]));

  // Each expert runs once on all the tokens that chose it, so that its weights are read once.
  // outputs[t][k]: token t's k-th chosen expert's output.
  std::vector<std::vector<std::vector<double>>> outputs(T);
  for (std::size_t t = 0; t < T; ++t) outputs[t].resize(routes[t].chosen.size());
  // chose[e]: the (token, k) that chose expert e, in token order.
  std::vector<std::vector<std::pair<std::size_t, std::size_t>>> chose(E);
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t k = 0; k < routes[t].chosen.size(); ++k)
      chose[static_cast<std::size_t>(routes[t].chosen[k])].emplace_back(t, k);
  std::vector<std::size_t> active;  // the experts some token chose
  std::size_t largest = 0;
  for (std::size_t e = 0; e < E; ++e)
    if (!chose[e].empty()) {
      active.push_back(e);
      largest = std::max(largest, chose[e].size());
    }
  // Expert e on its tokens; `whole`: on the caller's thread alone. Each (token, k) is one expert's,
  // so experts on different threads write different outputs.
  const auto run = [&](std::size_t e, bool whole) {
    const auto& members = chose[e];
    std::vector<double> group(members.size() * D);
    for (std::size_t m = 0; m < members.size(); ++m)
      std::copy(x[members[m].first].begin(), x[members[m].first].end(), group.begin() + m * D);
    const ExpertWeights& weights = w.experts[e];
    const auto y = expert(whole ? ExpertWeights{weights.w1.on_caller(), weights.w2.on_caller(),
                                                weights.w3.on_caller()}
                                : weights,
                          group, static_cast<std::int64_t>(members.size()), c.swiglu_limit);
    for (std::size_t m = 0; m < members.size(); ++m)
      outputs[members[m].first][members[m].second].assign(y.begin() + m * D,
                                                          y.begin() + (m + 1) * D);
  };
  // Decoding, each expert has a token or a few: its rows split among the threads cost three
  // hand-offs an expert for little work each, so the experts are split among them instead, each
  // computed whole by one. The values are the same either way (a row is the same computation on
  // any thread); with many tokens an expert, splitting rows keeps the threads evenly loaded.
  ThreadPool* pool = w.experts.empty() ? nullptr : w.experts.front().w1.pool();
  if (pool && largest <= kFewTokens && active.size() >= 2 * pool->size())
    pool->parallel_for(static_cast<std::int64_t>(active.size()),
                       [&](std::int64_t begin, std::int64_t end) {
                         for (std::int64_t i = begin; i < end; ++i)
                           run(active[static_cast<std::size_t>(i)], true);
                       });
  else
    for (std::size_t e : active) run(e, false);
  std::vector<double> shared;
  if (w.shared) shared = expert(*w.shared, inputs, static_cast<std::int64_t>(T), c.swiglu_limit);

  // Each token's sum in the order of its choice, then the shared expert's.
  Batch sums(T, std::vector<double>(D, 0.0));
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t k = 0; k < outputs[t].size(); ++k)
      for (std::size_t i = 0; i < D; ++i) sums[t][i] += routes[t].weights[k] * outputs[t][k][i];
    if (w.shared)
      for (std::size_t i = 0; i < D; ++i) sums[t][i] += shared[t * D + i];
  }
  return sums;
}

namespace {

// mix = (fn . X) / sqrt(mean(X^2) + eps): `rows` values from the flattened streams.
std::vector<double> stream_mix(const Config& c, std::span<const float> fn,
                               std::span<const double> streams, std::size_t rows) {
  const double square = dot(streams, streams);
  const double r = 1.0 / std::sqrt(square / static_cast<double>(streams.size()) + c.rms_norm_eps);
  std::vector<double> mix(rows);
  for (std::size_t i = 0; i < rows; ++i)
    mix[i] = dot(fn.subspan(i * streams.size(), streams.size()), streams) * r;
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

namespace {

// How a sublayer's input is drawn from a token's streams (pre) and its output and the streams
// mixed back (post, C).
struct Mixing {
  std::vector<double> pre, post, C;
};

Mixing mixing(const Config& c, const HyperWeights& w, std::span<const double> streams) {
  const auto hc = static_cast<std::size_t>(c.hc_mult);
  const auto mix = stream_mix(c, w.fn, streams, 2 * hc + hc * hc);
  Mixing m{std::vector<double>(hc), std::vector<double>(hc), std::vector<double>(hc * hc)};
  auto &pre = m.pre, &post = m.post, &C = m.C;
  for (std::size_t j = 0; j < hc; ++j) {
    pre[j] = sigmoid(mix[j] * w.scale[0] + w.base[j]) + c.hc_eps;
    post[j] = 2 * sigmoid(mix[hc + j] * w.scale[1] + w.base[hc + j]);
  }
  // The mixing matrix C[j][k] (stream j into stream k): softmax over each row, then Sinkhorn
  // normalisation towards doubly stochastic, columns first.
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

  return m;
}

}  // namespace

void hyper_connected(const Config& c, const HyperWeights& w, std::span<const float> norm,
                     Batch& streams, const Sublayer& sublayer) {
  const auto hc = static_cast<std::size_t>(c.hc_mult), D = static_cast<std::size_t>(c.hidden_size);
  std::vector<Mixing> mixes;
  Batch inputs;
  for (const auto& s : streams) {
    mixes.push_back(mixing(c, w, s));
    inputs.push_back(collapse(c, mixes.back().pre, s, norm));
  }
  const Batch y = sublayer(inputs);
  for (std::size_t t = 0; t < streams.size(); ++t) {
    const Mixing& m = mixes[t];
    std::vector<double> next(hc * D);
    for (std::size_t k = 0; k < hc; ++k)
      for (std::size_t i = 0; i < D; ++i) {
        double v = m.post[k] * y[t][i];
        for (std::size_t j = 0; j < hc; ++j) v += m.C[j * hc + k] * streams[t][j * D + i];
        next[k * D + i] = v;
      }
    streams[t] = std::move(next);
  }
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
