// config.json: the official configs read as published, their figures, and every kind of bad
// config refused with the field named.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "warren/inference/model.hpp"

namespace inf = warren::inference;

namespace {

std::string official(const char* name) {
  std::ifstream in(std::string(WARREN_SOURCE_DIR) + "/tests/inference/data/" + name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The Flash config with one field changed (or removed, with a null value).
std::string flash_with(const std::string& field, const nlohmann::json& value) {
  auto json = nlohmann::json::parse(official("config-flash.json"));
  if (value.is_null())
    json.erase(field);
  else
    json[field] = value;
  return json.dump();
}

std::string error_of(const std::string& text) {
  auto config = inf::parse_config(text);
  return config ? "(accepted)" : config.error().message;
}

}  // namespace

TEST(ModelConfig, TheOfficialConfigsReadAsPublished) {
  auto flash = inf::parse_config(official("config-flash.json"));
  ASSERT_TRUE(flash) << flash.error().message;
  EXPECT_EQ(flash->hidden_size, 4096);
  EXPECT_EQ(flash->num_hidden_layers, 43);
  EXPECT_EQ(flash->compress_ratios.size(), 44u);
  EXPECT_EQ(flash->expert_format, inf::ExpertFormat::Fp4);  // Flash's config names none
  EXPECT_EQ(flash->rope_original_max_position, 65536);
  EXPECT_DOUBLE_EQ(flash->routed_scaling_factor, 1.5);
  auto pro = inf::parse_config(official("config-pro.json"));
  ASSERT_TRUE(pro) << pro.error().message;
  EXPECT_EQ(pro->hidden_size, 7168);
  EXPECT_EQ(pro->n_routed_experts, 384);
  EXPECT_EQ(pro->compress_ratios.front(), 128);
}

TEST(ModelConfig, TheOfficialModelsSizesComeOutAsPublished) {
  // Published: V4-Flash 284B parameters, 13B active; V4-Pro 1.6T, 49B active.
  const auto flash = inf::describe(*inf::parse_config(official("config-flash.json")));
  EXPECT_NEAR(static_cast<double>(flash.parameters) / 1e9, 284.3, 0.5);
  EXPECT_NEAR(static_cast<double>(flash.active_parameters) / 1e9, 13.3, 0.3);
  const auto pro = inf::describe(*inf::parse_config(official("config-pro.json")));
  EXPECT_NEAR(static_cast<double>(pro.parameters) / 1e12, 1.57, 0.03);
  EXPECT_NEAR(static_cast<double>(pro.active_parameters) / 1e9, 48.9, 0.5);
  // KV per token: 21 CSA layers of (584 + 68) / 4 bytes and 20 HCA layers of 584 / 128.
  EXPECT_DOUBLE_EQ(flash.kv_bytes_per_token, 21 * 652.0 / 4 + 20 * 584.0 / 128);
  // Pro: 30 CSA, 31 HCA (its first two layers are HCA too).
  EXPECT_DOUBLE_EQ(pro.kv_bytes_per_token, 30 * 652.0 / 4 + 31 * 584.0 / 128);
}

TEST(ModelConfig, AConfigWrittenReadsBackTheSame) {
  for (auto preset : {inf::Preset::Tiny, inf::Preset::Small, inf::Preset::FlashSlice}) {
    const inf::Config c = inf::preset_config(preset);
    auto back = inf::parse_config(inf::config_json(c));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(inf::config_json(*back), inf::config_json(c));
    EXPECT_EQ(back->compress_ratios, c.compress_ratios);
  }
  auto flash = inf::parse_config(official("config-flash.json"));
  EXPECT_EQ(inf::config_json(*inf::parse_config(inf::config_json(*flash))),
            inf::config_json(*flash));
}

TEST(ModelConfig, BadConfigsAreRefusedNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {flash_with("mystery_field", 1), "config.json: mystery_field: unknown field"},
      {flash_with("hidden_size", "4096"), "config.json: hidden_size: expected an integer"},
      {flash_with("hidden_size", 4000), "config.json: hidden_size: must be a multiple of 128"},
      {flash_with("scoring_func", "softmax"),
       "config.json: scoring_func: must be \"sqrtsoftplus\""},
      {flash_with("expert_dtype", "int4"), "config.json: expert_dtype: must be \"fp4\" or \"fp8\""},
      {flash_with("model_type", "deepseek_v3"), "config.json: model_type: must be \"deepseek_v4\""},
      {flash_with("compress_ratios", {0, 4}),
       "config.json: compress_ratios: needs one entry per layer and per MTP layer (44), has 2"},
      {flash_with("compress_ratios", nlohmann::json(std::vector<int>(44, 8))),
       "config.json: compress_ratios: entry 0 is 8"},
      {flash_with("o_groups", 6), "config.json: o_groups: must divide num_attention_heads"},
      {flash_with("num_experts_per_tok", 300),
       "config.json: num_experts_per_tok: must not exceed n_routed_experts"},
      {flash_with("index_head_dim", 96), "config.json: index_head_dim: must be a power of two"},
      {flash_with("num_key_value_heads", 8), "config.json: num_key_value_heads: must be 1"},
      {flash_with("rope_scaling", {{"type", "linear"}}), "config.json: rope_scaling: type must be"},
      {flash_with("quantization_config", {{"fmt", "e5m2"}}),
       "config.json: quantization_config: fmt must be \"e4m3\""},
      {flash_with("head_dim", nullptr), "config.json: head_dim: missing"},
      {"[1, 2]", "config.json: not a JSON object"},
  };
  for (const auto& [text, expected] : cases) {
    const std::string error = error_of(text);
    EXPECT_EQ(error.rfind(expected, 0), 0u) << error << "\nexpected: " << expected;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

TEST(ModelConfig, AnMtpLayerIsWindowOnly) {
  std::vector<int> ratios(44, 4);
  EXPECT_EQ(error_of(flash_with("compress_ratios", ratios))
                .rfind("config.json: compress_ratios: an MTP layer's entry must be 0", 0),
            0u);
}
