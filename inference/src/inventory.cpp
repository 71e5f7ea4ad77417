// The official checkpoint layout, as a function of the config. Symbols as in tensors.md: D
// hidden, H heads, d head_dim, Lq q_lora_rank, G o_groups, Lo o_lora_rank, E routed experts, I
// moe_intermediate, Hi/di the indexer's heads and head dim, V vocab, K experts per token.
#include "inventory.hpp"

namespace warren::inference {

std::uint64_t element_count(const std::vector<std::int64_t>& shape) {
  std::uint64_t n = 1;
  for (std::int64_t s : shape) n *= static_cast<std::uint64_t>(s);
  return n;
}

namespace {

using Shape = std::vector<std::int64_t>;

std::int64_t blocks_of(std::int64_t n, std::int64_t block) {
  return (n + block - 1) / block;
}

class Inventory {
 public:
  explicit Inventory(const Config& config) : c_(config) {}

  void add(std::string name, DType dtype, Shape shape, TensorRole role) {
    specs_.push_back({std::move(name), dtype, std::move(shape), role});
  }
  // A linear layer [out, in] in FP8 e4m3 with one e8m0 scale per 128x128 block.
  void fp8_linear(const std::string& prefix, std::int64_t out, std::int64_t in, TensorRole role) {
    add(prefix + ".weight", DType::F8_E4M3, {out, in}, role);
    add(prefix + ".scale", DType::F8_E8M0, {blocks_of(out, 128), blocks_of(in, 128)}, role);
  }
  // A routed expert's linear layer: FP4 e2m1 packed two per byte (low nibble first) with one
  // e8m0 scale per 32 inputs, or FP8 as the other linears where the config says so.
  void expert_linear(const std::string& prefix, std::int64_t out, std::int64_t in,
                     TensorRole role) {
    if (c_.expert_format == ExpertFormat::Fp8) return fp8_linear(prefix, out, in, role);
    add(prefix + ".weight", DType::I8, {out, in / 2}, role);
    add(prefix + ".scale", DType::F8_E8M0, {out, in / 32}, role);
  }

  // One transformer block: main layers are `layers.L`, MTP layers `mtp.N`.
  void block(const std::string& p, int ratio, bool hash_routed, TensorRole role) {
    const std::int64_t D = c_.hidden_size, H = c_.num_attention_heads, d = c_.head_dim;
    const std::int64_t Lq = c_.q_lora_rank, G = c_.o_groups, Lo = c_.o_lora_rank;
    const std::int64_t hc = c_.hc_mult, mix = 2 * hc + hc * hc;  // pre, post, the hc x hc mixing
    add(p + ".attn_norm.weight", DType::BF16, {D}, role);
    add(p + ".ffn_norm.weight", DType::BF16, {D}, role);
    for (const char* sub : {"attn", "ffn"}) {
      add(p + ".hc_" + sub + "_fn", DType::F32, {mix, hc * D}, role);
      add(p + ".hc_" + sub + "_base", DType::F32, {mix}, role);
      add(p + ".hc_" + sub + "_scale", DType::F32, {3}, role);
    }
    const std::string a = p + ".attn";
    fp8_linear(a + ".wq_a", Lq, D, role);
    add(a + ".q_norm.weight", DType::BF16, {Lq}, role);
    fp8_linear(a + ".wq_b", H * d, Lq, role);
    fp8_linear(a + ".wkv", d, D, role);
    add(a + ".kv_norm.weight", DType::BF16, {d}, role);
    fp8_linear(a + ".wo_a", G * Lo, H * d / G, role);
    fp8_linear(a + ".wo_b", D, G * Lo, role);
    add(a + ".attn_sink", DType::F32, {H}, role);
    if (ratio > 0) compressor(a + ".compressor", ratio, d, role);
    if (ratio == 4) {
      const std::int64_t Hi = c_.index_n_heads, di = c_.index_head_dim;
      fp8_linear(a + ".indexer.wq_b", Hi * di, Lq, role);
      add(a + ".indexer.weights_proj.weight", DType::BF16, {Hi, D}, role);
      compressor(a + ".indexer.compressor", 4, di, role);
    }
    ffn(p + ".ffn", hash_routed, role);
  }

  // A compressor of `ratio`-token blocks into entries of `dim`: CSA's (ratio 4) blocks overlap,
  // so its projections make two halves (2 * dim) per token.
  void compressor(const std::string& p, int ratio, std::int64_t dim, TensorRole role) {
    const std::int64_t width = (ratio == 4 ? 2 : 1) * dim;
    add(p + ".wkv.weight", DType::BF16, {width, c_.hidden_size}, role);
    add(p + ".wgate.weight", DType::BF16, {width, c_.hidden_size}, role);
    add(p + ".ape", DType::F32, {ratio, width}, role);
    add(p + ".norm.weight", DType::BF16, {dim}, role);
  }

  void ffn(const std::string& p, bool hash_routed, TensorRole role) {
    const std::int64_t D = c_.hidden_size, E = c_.n_routed_experts, I = c_.moe_intermediate_size;
    add(p + ".gate.weight", DType::BF16, {E, D}, role);
    if (hash_routed)
      add(p + ".gate.tid2eid", DType::I64, {c_.vocab_size, c_.num_experts_per_tok}, role);
    else
      add(p + ".gate.bias", DType::F32, {E}, role);
    const TensorRole expert_role = role == TensorRole::Mtp ? role : TensorRole::RoutedExpert;
    for (std::int64_t e = 0; e < E; ++e) {
      const std::string x = p + ".experts." + std::to_string(e);
      expert_linear(x + ".w1", I, D, expert_role);
      expert_linear(x + ".w2", D, I, expert_role);
      expert_linear(x + ".w3", I, D, expert_role);
    }
    if (c_.n_shared_experts > 0) {
      const std::int64_t Is = I * c_.n_shared_experts;
      fp8_linear(p + ".shared_experts.w1", Is, D, role);
      fp8_linear(p + ".shared_experts.w2", D, Is, role);
      fp8_linear(p + ".shared_experts.w3", Is, D, role);
    }
  }

  // The stream mixing before a head: hc weights from the hc copies of the hidden state.
  void hc_head(const std::string& p, TensorRole role) {
    const std::int64_t hc = c_.hc_mult;
    add(p + "hc_head_fn", DType::F32, {hc, hc * c_.hidden_size}, role);
    add(p + "hc_head_base", DType::F32, {hc}, role);
    add(p + "hc_head_scale", DType::F32, {1}, role);
  }

  std::vector<TensorSpec> all() {
    const std::int64_t D = c_.hidden_size;
    add("embed.weight", DType::BF16, {c_.vocab_size, D}, TensorRole::Embedding);
    for (std::int64_t l = 0; l < c_.num_hidden_layers; ++l)
      block("layers." + std::to_string(l), c_.compress_ratios[static_cast<std::size_t>(l)],
            l < c_.num_hash_layers, TensorRole::Dense);
    add("norm.weight", DType::BF16, {D}, TensorRole::Dense);
    hc_head("", TensorRole::Dense);
    add("head.weight", DType::BF16, {c_.vocab_size, D}, TensorRole::Head);
    for (std::int64_t m = 0; m < c_.num_nextn_predict_layers; ++m) {
      const std::string p = "mtp." + std::to_string(m);
      const auto ratio = c_.compress_ratios[static_cast<std::size_t>(c_.num_hidden_layers + m)];
      block(p, ratio, false, TensorRole::Mtp);
      fp8_linear(p + ".e_proj", D, D, TensorRole::Mtp);
      fp8_linear(p + ".h_proj", D, D, TensorRole::Mtp);
      for (const char* norm : {".enorm", ".hnorm", ".norm"})
        add(p + norm + ".weight", DType::BF16, {D}, TensorRole::Mtp);
      hc_head(p + ".", TensorRole::Mtp);
    }
    return std::move(specs_);
  }

 private:
  const Config& c_;
  std::vector<TensorSpec> specs_;
};

}  // namespace

std::vector<TensorSpec> checkpoint_inventory(const Config& config) {
  return Inventory(config).all();
}

}  // namespace warren::inference
