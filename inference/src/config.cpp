// config.json of model_type deepseek_v4: read, checked, written. Every field the official Flash
// and Pro configs have is known here; any other is refused by name, so that a config of a
// different model (or a newer revision of this one) is never run with fields silently ignored.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "warren/inference/model.hpp"

namespace warren::inference {

namespace {

using Json = nlohmann::json;

Error field_error(std::string_view field, const std::string& why) {
  return Error{"config.json: " + std::string(field) + ": " + why};
}

// How one field is read into a Config: returns "" or why the value is refused.
using FieldReader = std::function<std::string(const Json&, Config&)>;

FieldReader integer(std::int64_t Config::*member, std::int64_t min = 0) {
  return [member, min](const Json& v, Config& c) -> std::string {
    if (!v.is_number_integer()) return "expected an integer";
    if (v.get<std::int64_t>() < min) return "must be at least " + std::to_string(min);
    c.*member = v.get<std::int64_t>();
    return "";
  };
}

FieldReader real(double Config::*member, bool positive = true) {
  return [member, positive](const Json& v, Config& c) -> std::string {
    if (!v.is_number()) return "expected a number";
    const double d = v.get<double>();
    if (!std::isfinite(d) || (positive && d <= 0)) return "must be a positive number";
    c.*member = d;
    return "";
  };
}

// A field whose value is fixed by the architecture (or by what the engine implements).
FieldReader exactly(Json expected) {
  return [expected](const Json& v, Config&) -> std::string {
    if (v != expected) return "must be " + expected.dump() + " (got " + v.dump() + ")";
    return "";
  };
}

// A field the engine does not use, of the given JSON type.
FieldReader accepted(Json::value_t type) {
  return [type](const Json& v, Config&) -> std::string {
    const bool number = type == Json::value_t::number_float && v.is_number();
    if (v.type() != type && !number) return std::string("expected a ") + Json(type).type_name();
    return "";
  };
}

std::string read_rope_scaling(const Json& v, Config& c) {
  if (!v.is_object()) return "expected an object";
  for (const auto& [key, value] : v.items()) {
    if (key == "type") {
      if (value != "yarn") return "type must be \"yarn\" (got " + value.dump() + ")";
    } else if (key == "factor" || key == "beta_fast" || key == "beta_slow") {
      if (!value.is_number() || value.get<double>() <= 0) return key + " must be a positive number";
      (key == "factor"      ? c.rope_factor
       : key == "beta_fast" ? c.rope_beta_fast
                            : c.rope_beta_slow) = value.get<double>();
    } else if (key == "original_max_position_embeddings") {
      if (!value.is_number_integer() || value.get<std::int64_t>() <= 0)
        return key + " must be a positive integer";
      c.rope_original_max_position = value.get<std::int64_t>();
    } else {
      return "unknown field " + key;
    }
  }
  if (c.rope_original_max_position == 0) return "original_max_position_embeddings is missing";
  return "";
}

std::string read_quantization(const Json& v, Config&) {
  // The official checkpoints' scheme, the only one the loader reads: FP8 e4m3 weights with e8m0
  // scales per 128x128 block, activations quantised on the fly.
  const Json expected = {{"activation_scheme", "dynamic"},
                         {"fmt", "e4m3"},
                         {"quant_method", "fp8"},
                         {"scale_fmt", "ue8m0"},
                         {"weight_block_size", {128, 128}}};
  if (!v.is_object()) return "expected an object";
  for (const auto& [key, value] : v.items()) {
    if (!expected.contains(key)) return "unknown field " + key;
    if (value != expected[key])
      return key + " must be " + expected[key].dump() + " (got " + value.dump() + ")";
  }
  return "";
}

std::string read_compress_ratios(const Json& v, Config& c) {
  if (!v.is_array()) return "expected an array";
  c.compress_ratios.clear();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer()) return "entry " + std::to_string(i) + " is not an integer";
    const auto ratio = v[i].get<std::int64_t>();
    if (ratio != 0 && ratio != 4 && ratio != 128)
      return "entry " + std::to_string(i) + " is " + std::to_string(ratio) +
             " (0 window-only, 4 CSA or 128 HCA)";
    c.compress_ratios.push_back(static_cast<int>(ratio));
  }
  return "";
}

const std::map<std::string, FieldReader, std::less<>>& field_readers() {
  using V = Json::value_t;
  static const std::map<std::string, FieldReader, std::less<>> readers = {
      {"architectures", exactly(Json::array({"DeepseekV4ForCausalLM"}))},
      {"model_type", exactly("deepseek_v4")},
      {"attention_bias", exactly(false)},
      {"attention_dropout", accepted(V::number_float)},
      {"bos_token_id", integer(&Config::bos_token_id)},
      {"eos_token_id", integer(&Config::eos_token_id)},
      {"expert_dtype",
       [](const Json& v, Config& c) -> std::string {
         if (v == "fp4")
           c.expert_format = ExpertFormat::Fp4;
         else if (v == "fp8")
           c.expert_format = ExpertFormat::Fp8;
         else
           return "must be \"fp4\" or \"fp8\" (got " + v.dump() + ")";
         return "";
       }},
      {"hc_eps", real(&Config::hc_eps)},
      {"hc_mult", integer(&Config::hc_mult, 1)},
      {"hc_sinkhorn_iters", integer(&Config::hc_sinkhorn_iters, 1)},
      {"head_dim", integer(&Config::head_dim, 1)},
      {"hidden_act", exactly("silu")},
      {"hidden_size", integer(&Config::hidden_size, 1)},
      {"index_head_dim", integer(&Config::index_head_dim, 1)},
      {"index_n_heads", integer(&Config::index_n_heads, 1)},
      {"index_topk", integer(&Config::index_topk, 1)},
      {"initializer_range", accepted(V::number_float)},
      {"max_position_embeddings", integer(&Config::max_position_embeddings, 1)},
      {"moe_intermediate_size", integer(&Config::moe_intermediate_size, 1)},
      {"n_routed_experts", integer(&Config::n_routed_experts, 1)},
      {"n_shared_experts", integer(&Config::n_shared_experts)},
      {"norm_topk_prob",
       [](const Json& v, Config& c) -> std::string {
         if (!v.is_boolean()) return "expected true or false";
         c.norm_topk_prob = v.get<bool>();
         return "";
       }},
      {"num_attention_heads", integer(&Config::num_attention_heads, 1)},
      {"num_experts_per_tok", integer(&Config::num_experts_per_tok, 1)},
      {"num_hidden_layers", integer(&Config::num_hidden_layers, 1)},
      {"num_hash_layers", integer(&Config::num_hash_layers)},
      {"num_key_value_heads", exactly(1)},  // MQA: one KV head, K and V the same row
      {"num_nextn_predict_layers", integer(&Config::num_nextn_predict_layers)},
      {"o_groups", integer(&Config::o_groups, 1)},
      {"o_lora_rank", integer(&Config::o_lora_rank, 1)},
      {"q_lora_rank", integer(&Config::q_lora_rank, 1)},
      {"qk_rope_head_dim", integer(&Config::qk_rope_head_dim, 2)},
      {"quantization_config", read_quantization},
      {"rms_norm_eps", real(&Config::rms_norm_eps)},
      {"rope_scaling", read_rope_scaling},
      {"rope_theta", real(&Config::rope_theta)},
      {"compress_rope_theta", real(&Config::compress_rope_theta)},
      {"compress_ratios", read_compress_ratios},
      {"routed_scaling_factor", real(&Config::routed_scaling_factor)},
      {"scoring_func", exactly("sqrtsoftplus")},
      {"sliding_window", integer(&Config::sliding_window, 1)},
      {"swiglu_limit", real(&Config::swiglu_limit)},
      {"tie_word_embeddings", exactly(false)},
      {"topk_method", exactly("noaux_tc")},
      {"torch_dtype", exactly("bfloat16")},
      {"transformers_version", accepted(V::string)},
      {"use_cache", accepted(V::boolean)},
      {"vocab_size", integer(&Config::vocab_size, 2)},
  };
  return readers;
}

bool power_of_two(std::int64_t n) {
  return n > 0 && (n & (n - 1)) == 0;
}

// Shapes that must fit together, each checked where the engine relies on it. "" when they do.
std::string inconsistency(const Config& c) {
  auto need = [](bool ok, const char* field, const std::string& why) {
    return ok ? std::string() : std::string(field) + ": " + why;
  };
  const std::int64_t nope = c.head_dim - c.qk_rope_head_dim;
  const std::string checks[] = {
      // Activations are quantised in 1x128 blocks and FP4 weights scaled per 32 inputs: every
      // input dimension of a quantised matmul is a whole number of blocks.
      need(c.hidden_size % 128 == 0, "hidden_size", "must be a multiple of 128"),
      need(c.q_lora_rank % 128 == 0, "q_lora_rank", "must be a multiple of 128"),
      need(c.o_lora_rank % 128 == 0, "o_lora_rank", "must be a multiple of 128"),
      need(c.moe_intermediate_size % 128 == 0, "moe_intermediate_size",
           "must be a multiple of 128"),
      need(c.qk_rope_head_dim % 2 == 0 && c.qk_rope_head_dim < c.head_dim, "qk_rope_head_dim",
           "must be even and less than head_dim"),
      // The no-RoPE dims of KV rows are stored in FP8 blocks of 64.
      need(nope % 64 == 0, "head_dim", "head_dim - qk_rope_head_dim must be a multiple of 64"),
      need(c.num_attention_heads % c.o_groups == 0, "o_groups", "must divide num_attention_heads"),
      need(c.num_attention_heads * c.head_dim / c.o_groups % 128 == 0, "o_groups",
           "each group's heads must span a multiple of 128 dims"),
      // Indexer keys and queries are Hadamard-rotated (a power of two) and FP4 in blocks of 32.
      need(power_of_two(c.index_head_dim) && c.index_head_dim >= 32 &&
               c.index_head_dim >= c.qk_rope_head_dim,
           "index_head_dim", "must be a power of two, at least 32 and qk_rope_head_dim"),
      need(c.num_experts_per_tok <= c.n_routed_experts, "num_experts_per_tok",
           "must not exceed n_routed_experts"),
      need(c.num_hash_layers <= c.num_hidden_layers, "num_hash_layers",
           "must not exceed num_hidden_layers"),
      need(static_cast<std::int64_t>(c.compress_ratios.size()) == c.layers_with_mtp(),
           "compress_ratios",
           "needs one entry per layer and per MTP layer (" + std::to_string(c.layers_with_mtp()) +
               "), has " + std::to_string(c.compress_ratios.size())),
      need(c.bos_token_id < c.vocab_size && c.eos_token_id < c.vocab_size, "vocab_size",
           "must hold bos_token_id and eos_token_id"),
      need(c.sliding_window >= 1, "sliding_window", "must be at least 1"),
      need(c.compress_ratios.size() < static_cast<std::size_t>(c.layers_with_mtp()) ||
               std::all_of(c.compress_ratios.begin() + c.num_hidden_layers, c.compress_ratios.end(),
                           [](int r) { return r == 0; }),
           "compress_ratios", "an MTP layer's entry must be 0 (its attention is window-only)"),
  };
  for (const std::string& why : checks)
    if (!why.empty()) return why;
  return "";
}

}  // namespace

Result<Config> parse_config(std::string_view json_text) {
  Json json = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object())
    return tl::unexpected(Error{"config.json: not a JSON object"});
  Config config;
  const auto& readers = field_readers();
  for (const auto& [field, value] : json.items()) {
    auto reader = readers.find(field);
    if (reader == readers.end())
      return tl::unexpected(field_error(field, "unknown field (not a DeepSeek-V4 config?)"));
    if (std::string why = reader->second(value, config); !why.empty())
      return tl::unexpected(field_error(field, why));
  }
  for (const char* required :
       {"model_type",          "vocab_size",    "hidden_size",           "num_hidden_layers",
        "num_attention_heads", "head_dim",      "qk_rope_head_dim",      "q_lora_rank",
        "o_lora_rank",         "o_groups",      "moe_intermediate_size", "n_routed_experts",
        "num_experts_per_tok", "index_n_heads", "index_head_dim",        "index_topk",
        "sliding_window",      "hc_mult",       "hc_sinkhorn_iters",     "compress_ratios",
        "rope_scaling",        "swiglu_limit",  "scoring_func"})
    if (!json.contains(required)) return tl::unexpected(field_error(required, "missing"));
  if (std::string why = inconsistency(config); !why.empty())
    return tl::unexpected(Error{"config.json: " + why});
  return config;
}

Result<Config> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return tl::unexpected(Error{path + ": cannot be read"});
  std::ostringstream text;
  text << in.rdbuf();
  auto config = parse_config(text.str());
  if (!config) return tl::unexpected(Error{path + ": " + config.error().message.substr(13)});
  return config;
}

std::string config_json(const Config& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {"DeepseekV4ForCausalLM"};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  j["expert_dtype"] = c.expert_format == ExpertFormat::Fp4 ? "fp4" : "fp8";
  j["hc_eps"] = c.hc_eps;
  j["hc_mult"] = c.hc_mult;
  j["hc_sinkhorn_iters"] = c.hc_sinkhorn_iters;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["index_head_dim"] = c.index_head_dim;
  j["index_n_heads"] = c.index_n_heads;
  j["index_topk"] = c.index_topk;
  j["initializer_range"] = 0.02;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["model_type"] = "deepseek_v4";
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["n_routed_experts"] = c.n_routed_experts;
  j["n_shared_experts"] = c.n_shared_experts;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_hash_layers"] = c.num_hash_layers;
  j["num_key_value_heads"] = 1;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["o_groups"] = c.o_groups;
  j["o_lora_rank"] = c.o_lora_rank;
  j["q_lora_rank"] = c.q_lora_rank;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["quantization_config"] = {{"activation_scheme", "dynamic"},
                              {"fmt", "e4m3"},
                              {"quant_method", "fp8"},
                              {"scale_fmt", "ue8m0"},
                              {"weight_block_size", {128, 128}}};
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_scaling"] = {{"beta_fast", c.rope_beta_fast},
                       {"beta_slow", c.rope_beta_slow},
                       {"factor", c.rope_factor},
                       {"original_max_position_embeddings", c.rope_original_max_position},
                       {"type", "yarn"}};
  j["rope_theta"] = c.rope_theta;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["scoring_func"] = "sqrtsoftplus";
  j["sliding_window"] = c.sliding_window;
  j["swiglu_limit"] = c.swiglu_limit;
  j["tie_word_embeddings"] = false;
  j["topk_method"] = "noaux_tc";
  j["torch_dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  j["compress_rope_theta"] = c.compress_rope_theta;
  j["compress_ratios"] = c.compress_ratios;
  return j.dump(2) + "\n";
}

}  // namespace warren::inference
