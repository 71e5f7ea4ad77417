#include "model_weights.hpp"

namespace warren::inference {

namespace {

// Binds tensors by name, remembering the first error.
class Binder {
 public:
  Binder(const Checkpoint& checkpoint, ThreadPool* pool, Kernels kernels)
      : c_(checkpoint), pool_(pool), kernels_(kernels) {}
  Linear linear(const std::string& name) {
    auto l = Linear::bind(c_, name, pool_, kernels_);
    if (!l) fail(l.error());
    return l ? *l : Linear{};
  }
  std::vector<float> floats(const std::string& name) {
    auto v = read_floats(c_, name);
    if (!v) fail(v.error());
    return v ? *v : std::vector<float>{};
  }
  HyperWeights hyper(const std::string& p) {
    return {floats(p + "_fn"), floats(p + "_base"), floats(p + "_scale")};
  }
  CompressorWeights compressor(const std::string& p, int ratio, std::int64_t dim) {
    return {ratio,
            dim,
            linear(p + ".wkv"),
            linear(p + ".wgate"),
            floats(p + ".ape"),
            floats(p + ".norm.weight")};
  }
  ExpertWeights expert(const std::string& p) {
    return {linear(p + ".w1"), linear(p + ".w2"), linear(p + ".w3")};
  }
  void fail(const Error& e) {
    if (!error) error = e;
  }
  std::optional<Error> error;

 private:
  const Checkpoint& c_;
  ThreadPool* pool_;
  Kernels kernels_;
};

LayerWeights bind_layer(Binder& b, const Checkpoint& checkpoint, std::int64_t l) {
  const Config& c = checkpoint.config();
  const std::string p = "layers." + std::to_string(l);
  LayerWeights w;
  w.ratio = c.compress_ratios[static_cast<std::size_t>(l)];
  w.attn_norm = b.floats(p + ".attn_norm.weight");
  w.ffn_norm = b.floats(p + ".ffn_norm.weight");
  w.hc_attn = b.hyper(p + ".hc_attn");
  w.hc_ffn = b.hyper(p + ".hc_ffn");
  AttentionWeights& a = w.attn;
  a.wq_a = b.linear(p + ".attn.wq_a");
  a.wq_b = b.linear(p + ".attn.wq_b");
  a.wkv = b.linear(p + ".attn.wkv");
  a.wo_a = b.linear(p + ".attn.wo_a");
  a.wo_b = b.linear(p + ".attn.wo_b");
  a.q_norm = b.floats(p + ".attn.q_norm.weight");
  a.kv_norm = b.floats(p + ".attn.kv_norm.weight");
  a.sink = b.floats(p + ".attn.attn_sink");
  if (w.ratio > 0) a.compressor = b.compressor(p + ".attn.compressor", w.ratio, c.head_dim);
  if (w.ratio == 4) {
    a.index_wq_b = b.linear(p + ".attn.indexer.wq_b");
    a.index_weights = b.linear(p + ".attn.indexer.weights_proj");
    a.index_compressor = b.compressor(p + ".attn.indexer.compressor", 4, c.index_head_dim);
  }
  FfnWeights& f = w.ffn;
  f.gate = b.linear(p + ".ffn.gate");
  f.tid2eid = nullptr;
  if (l < c.num_hash_layers) {
    auto t = checkpoint.tensor(p + ".ffn.gate.tid2eid");
    if (t)
      f.tid2eid = reinterpret_cast<const std::int64_t*>(t->data.data());
    else
      b.fail(t.error());
  } else {
    f.bias = b.floats(p + ".ffn.gate.bias");
  }
  for (std::int64_t e = 0; e < c.n_routed_experts; ++e)
    f.experts.push_back(b.expert(p + ".ffn.experts." + std::to_string(e)));
  if (c.n_shared_experts > 0) f.shared = b.expert(p + ".ffn.shared_experts");
  return w;
}

}  // namespace

Result<ModelWeights> bind_weights(const Checkpoint& checkpoint, ThreadPool* pool, Kernels kernels) {
  Binder b(checkpoint, pool, kernels);
  ModelWeights m;
  auto embed = checkpoint.tensor("embed.weight");
  if (!embed) return tl::unexpected(embed.error());
  m.embed = reinterpret_cast<const std::uint16_t*>(embed->data.data());
  m.head = b.linear("head").summed_in_float();
  m.norm = b.floats("norm.weight");
  m.hc_head_fn = b.floats("hc_head_fn");
  m.hc_head_base = b.floats("hc_head_base");
  m.hc_head_scale = b.floats("hc_head_scale");
  for (std::int64_t l = 0; l < checkpoint.config().num_hidden_layers; ++l)
    m.layers.push_back(bind_layer(b, checkpoint, l));
  if (b.error) return tl::unexpected(*b.error);
  return m;
}

}  // namespace warren::inference
