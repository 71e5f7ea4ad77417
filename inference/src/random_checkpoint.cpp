// Random-weight checkpoints in the official layout (`warren model init`): the presets, and the
// weights drawn for them. Values are drawn so that a forward pass stays in range (linears scaled
// by their fan-in, norms near 1), which is all random weights need to exercise every kernel; each
// tensor's stream is seeded from the seed and the tensor's name, so a checkpoint is the same byte
// for byte for a seed whatever order it is written in.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>

#include <nlohmann/json.hpp>

#include "formats.hpp"
#include "inventory.hpp"
#include "safetensors.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

Result<Preset> preset_named(std::string_view name) {
  if (name == "tiny") return Preset::Tiny;
  if (name == "small") return Preset::Small;
  if (name == "flash-slice") return Preset::FlashSlice;
  return tl::unexpected(
      Error{"unknown preset " + std::string(name) + " (tiny, small or flash-slice)"});
}

namespace {

// What every preset shares with the official configs.
Config official_defaults() {
  Config c;
  c.num_key_value_heads = 1;
  c.n_shared_experts = 1;
  c.hc_mult = 4;
  c.hc_sinkhorn_iters = 20;
  c.sliding_window = 128;
  c.rms_norm_eps = 1e-6;
  c.hc_eps = 1e-6;
  c.swiglu_limit = 10.0;
  c.rope_theta = 10000;
  c.compress_rope_theta = 160000;
  c.rope_factor = 16;
  c.rope_beta_fast = 32;
  c.rope_beta_slow = 1;
  c.rope_original_max_position = 65536;
  c.max_position_embeddings = 1048576;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  c.num_nextn_predict_layers = 1;
  c.num_hash_layers = 1;
  c.expert_format = ExpertFormat::Fp4;
  return c;
}

}  // namespace

Config preset_config(Preset preset) {
  Config c = official_defaults();
  switch (preset) {
    case Preset::Tiny:
      // Window-only, CSA, HCA and CSA again, then the MTP layer; small enough for every test.
      c.vocab_size = 2048, c.hidden_size = 256, c.num_hidden_layers = 4;
      c.num_attention_heads = 4, c.head_dim = 128, c.qk_rope_head_dim = 64;
      c.q_lora_rank = 128, c.o_lora_rank = 128, c.o_groups = 2;
      c.n_routed_experts = 8, c.num_experts_per_tok = 2, c.moe_intermediate_size = 128;
      c.index_n_heads = 4, c.index_head_dim = 128, c.index_topk = 16;
      c.routed_scaling_factor = 1.5;
      c.compress_ratios = {0, 4, 128, 4, 0};
      break;
    case Preset::Small:
      // A decoded token reads about 450 MB of weights (benchmarks).
      c.vocab_size = 32768, c.hidden_size = 2048, c.num_hidden_layers = 8;
      c.num_attention_heads = 16, c.head_dim = 512, c.qk_rope_head_dim = 64;
      c.q_lora_rank = 512, c.o_lora_rank = 512, c.o_groups = 4;
      c.n_routed_experts = 64, c.num_experts_per_tok = 6, c.moe_intermediate_size = 1024;
      c.index_n_heads = 16, c.index_head_dim = 128, c.index_topk = 128;
      c.routed_scaling_factor = 1.5;
      c.num_hash_layers = 2;
      c.compress_ratios = {0, 0, 4, 128, 4, 128, 4, 128, 0};
      break;
    case Preset::FlashSlice:
      // V4-Flash's shapes (config-flash.json), 4 layers and 16 experts instead of 43 and 256.
      c.vocab_size = 129280, c.hidden_size = 4096, c.num_hidden_layers = 4;
      c.num_attention_heads = 64, c.head_dim = 512, c.qk_rope_head_dim = 64;
      c.q_lora_rank = 1024, c.o_lora_rank = 1024, c.o_groups = 8;
      c.n_routed_experts = 16, c.num_experts_per_tok = 6, c.moe_intermediate_size = 2048;
      c.index_n_heads = 64, c.index_head_dim = 128, c.index_topk = 512;
      c.routed_scaling_factor = 1.5;
      c.num_hash_layers = 1;
      c.compress_ratios = {0, 4, 128, 4, 0};
      break;
  }
  return c;
}

namespace {

// splitmix64 (Steele, Lea and Flood 2014): small, fast, and good enough for weights.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float symmetric() { return static_cast<float>(next() >> 40) * 0x1p-23f - 1.0f; }

 private:
  std::uint64_t state_;
};

std::uint64_t stream_seed(std::uint64_t seed, std::string_view name) {
  std::uint64_t h = 0xCBF29CE484222325ull ^ seed;  // FNV-1a over the name
  for (char ch : name) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001B3ull;
  return h;
}

// The magnitude weights of a linear with `fan_in` inputs are drawn to: uniform with the variance
// of 1 / fan_in.
float weight_bound(std::int64_t fan_in) {
  return std::sqrt(3.0f / static_cast<float>(fan_in));
}

// The exponent of the scales of a quantised linear whose codes span +-format_max.
int scale_exponent(std::int64_t fan_in, float format_max) {
  return static_cast<int>(std::lround(std::log2(weight_bound(fan_in) / format_max)));
}

// Writes a tensor's values in chunks, never the whole tensor at once.
class ChunkWriter {
 public:
  explicit ChunkWriter(std::FILE* out) : out_(out), buffer_(kChunk) {}
  ~ChunkWriter() { flush(); }
  template <class T>
  void put(T value) {
    if (used_ + sizeof(T) > kChunk) flush();
    std::memcpy(buffer_.data() + used_, &value, sizeof(T));
    used_ += sizeof(T);
  }
  void flush() {
    if (used_ > 0) std::fwrite(buffer_.data(), 1, used_, out_);
    used_ = 0;
  }

 private:
  static constexpr std::size_t kChunk = 1 << 22;
  std::FILE* out_;
  std::vector<unsigned char> buffer_;
  std::size_t used_ = 0;
};

struct WeightDrawer {
  const Config& config;
  std::uint64_t seed;
  // dtype of each `X.weight` whose `X.scale` is drawn: the scale's exponent depends on it.
  const std::map<std::string, DType, std::less<>>& weight_dtypes;

  void draw(const TensorSpec& t, std::FILE* out) const {
    Random random(stream_seed(seed, t.name));
    ChunkWriter w(out);
    const std::uint64_t n = element_count(t.shape);
    const std::int64_t fan_in = t.shape.size() == 2 ? t.shape[1] : 1;
    switch (t.dtype) {
      case DType::BF16: {
        const bool norm = t.name.ends_with("norm.weight");
        const float bound = t.name == "embed.weight" ? 1.0f : weight_bound(fan_in);
        for (std::uint64_t i = 0; i < n; ++i) {
          const float u = random.symmetric();
          w.put(formats::float_to_bf16(norm ? 1.0f + 0.1f * u : bound * u));
        }
        break;
      }
      case DType::F32: {
        float bound = 0.1f, offset = 0.0f;
        if (t.name.ends_with("_fn")) bound = weight_bound(fan_in);
        if (t.name.ends_with("_base") || t.name.ends_with("attn_sink")) bound = 0.5f;
        if (t.name.ends_with("_scale")) bound = 0.2f, offset = 0.3f;  // in [0.1, 0.5]
        for (std::uint64_t i = 0; i < n; ++i) w.put(offset + bound * random.symmetric());
        break;
      }
      case DType::F8_E4M3:
        for (std::uint64_t i = 0; i < n; ++i)
          w.put(formats::float_to_e4m3(formats::kE4m3Max * random.symmetric()));
        break;
      case DType::I8:  // two FP4 e2m1 codes a byte: every code is a value
        for (std::uint64_t i = 0; i < n; ++i) w.put(static_cast<std::uint8_t>(random.next()));
        break;
      case DType::F8_E8M0: {
        const std::string weight = t.name.substr(0, t.name.size() - 6) + ".weight";
        const bool fp4 = weight_dtypes.at(weight) == DType::I8;
        const std::int64_t in = t.shape[1] * (fp4 ? 32 : 128);
        const int base = scale_exponent(in, fp4 ? formats::kE2m1Max : formats::kE4m3Max);
        // Blocks a power of two apart, as trained checkpoints have them.
        for (std::uint64_t i = 0; i < n; ++i)
          w.put(formats::e8m0_of_exponent(base + static_cast<int>(random.next() % 3) - 1));
        break;
      }
      case DType::I64: {  // tid2eid: num_experts_per_tok distinct experts per token
        std::vector<std::int64_t> experts(static_cast<std::size_t>(config.n_routed_experts));
        for (std::int64_t row = 0; row < t.shape[0]; ++row) {
          std::iota(experts.begin(), experts.end(), 0);
          for (std::int64_t k = 0; k < t.shape[1]; ++k) {
            const auto pick =
                k + static_cast<std::int64_t>(
                        random.next() % static_cast<std::uint64_t>(config.n_routed_experts - k));
            std::swap(experts[static_cast<std::size_t>(k)],
                      experts[static_cast<std::size_t>(pick)]);
            w.put(experts[static_cast<std::size_t>(k)]);
          }
        }
        break;
      }
    }
  }
};

std::string size_text(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

// Shards of at most this many bytes (a tensor larger than that is a shard of its own), and at
// least two, so that every checkpoint exercises the index.
constexpr std::uint64_t kShardBytes = 2ull << 30;

std::vector<std::vector<std::size_t>> plan_shards(const std::vector<TensorSpec>& tensors) {
  std::uint64_t total = 0;
  for (const auto& t : tensors) total += tensor_bytes(t.dtype, t.shape);
  const std::uint64_t limit = std::min(kShardBytes, total / 2 + 1);
  std::vector<std::vector<std::size_t>> shards(1);
  std::uint64_t in_shard = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::uint64_t bytes = tensor_bytes(tensors[i].dtype, tensors[i].shape);
    if (in_shard > 0 && in_shard + bytes > limit) shards.emplace_back(), in_shard = 0;
    shards.back().push_back(i);
    in_shard += bytes;
  }
  return shards;
}

// A corpus for the random checkpoint's tokenizer: prose from a made-up language (words of
// syllables, drawn with Zipf-like frequencies), shell commands, code, JSON, numbers, and a little
// Chinese and Japanese, so that the merges learned look like a real tokenizer's (words with their
// leading space, indentation, punctuation runs with the newline after them).
std::string synthetic_corpus(std::uint64_t seed, std::size_t bytes) {
  Random random(stream_seed(seed, "tokenizer corpus"));
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(random.next() % n); };
  const char* onsets[] = {"",  "b", "c", "d", "f", "g",  "h",  "k",  "l",  "m",  "n",  "p",
                          "r", "s", "t", "v", "w", "st", "tr", "pl", "ch", "sh", "th", "gr"};
  const char* vowels[] = {"a", "e", "i", "o", "u", "ou", "ea", "io", "y"};
  const char* codas[] = {"", "", "n", "r", "s", "t", "l", "nd", "ng", "ck", "x"};
  std::vector<std::string> words;
  for (int w = 0; w < 3000; ++w) {
    std::string word;
    for (std::size_t s = 0, n = 1 + pick(3); s < n; ++s) {
      word += onsets[pick(std::size(onsets))];
      word += vowels[pick(std::size(vowels))];
      word += codas[pick(std::size(codas))];
    }
    words.push_back(word);
  }
  // Zipf-like: the word at rank r is drawn about 1/r as often as the first.
  auto word = [&] {
    const double u = static_cast<double>(random.next() >> 11) * 0x1p-53;
    return words[static_cast<std::size_t>(std::pow(static_cast<double>(words.size()), u)) - 1];
  };
  const char* code[] = {
      "    if (x == nullptr) {\n        return 0;\n    }\n",
      "def main():\n    print(\"hello\")\n\n",
      "$ ls -la /app && cat README.md | grep -n TODO\n",
      "{\"name\": \"bash\", \"arguments\": {\"command\": \"pytest -q\"}}\n",
      "<｜DSML｜invoke name=\"bash\">\n<｜DSML｜parameter name=\"command\" string=\"true\">",
      "for i in range(10):\n        total += i * 2\n",
      "我们今天讨论模型的推理速度。",
      "これはテストです。",
      "\t\t\treturn nil, err\n"};
  std::string text;
  while (text.size() < bytes) {
    switch (pick(8)) {
      case 0:
        text += code[pick(std::size(code))];
        break;
      case 1:
        text += ' ';
        text += std::to_string(random.next() % 100000);
        break;
      default: {  // a sentence
        std::string sentence = word();
        sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
        for (std::size_t n = 3 + pick(12); n > 0; --n) {
          sentence += ' ';
          sentence += word();
        }
        text += sentence;
        text += pick(4) == 0 ? ".\n" : pick(2) ? ", " : ". ";
      }
    }
  }
  return text;
}

// The special tokens of the checkpoint's tokenizer: BOS, EOS and padding first (ids 0, 1, 2 as
// in DeepSeek's), then the tokens toolcall's V4 encoder writes.
const std::vector<std::string>& special_tokens() {
  static const std::vector<std::string> tokens = {"<｜begin▁of▁sentence｜>",
                                                  "<｜end▁of▁sentence｜>",
                                                  "<｜▁pad▁｜>",
                                                  "<｜User｜>",
                                                  "<｜Assistant｜>",
                                                  "<｜latest_reminder｜>",
                                                  "<think>",
                                                  "</think>",
                                                  "｜DSML｜",
                                                  "<｜action｜>",
                                                  "<｜query｜>",
                                                  "<｜authority｜>",
                                                  "<｜domain｜>",
                                                  "<｜title｜>",
                                                  "<｜read_url｜>"};
  return tokens;
}

}  // namespace

Result<void> write_random_checkpoint(const Config& config, const std::string& dir,
                                     std::uint64_t seed, const Progress& progress) {
  if (auto checked = parse_config(config_json(config)); !checked)
    return tl::unexpected(checked.error());
  ::mkdir(dir.c_str(), 0755);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return tl::unexpected(Error{dir + ": cannot be made as a folder"});
  if (::stat((dir + "/config.json").c_str(), &st) == 0)
    return tl::unexpected(Error{dir + ": already holds a checkpoint (config.json)"});

  const auto tensors = checkpoint_inventory(config);
  std::map<std::string, DType, std::less<>> weight_dtypes;
  for (const auto& t : tensors) weight_dtypes.emplace(t.name, t.dtype);
  const WeightDrawer drawer{config, seed, weight_dtypes};

  const auto shards = plan_shards(tensors);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  std::uint64_t total = 0;
  for (std::size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<PlannedTensor> planned;
    std::uint64_t bytes = 0;
    for (std::size_t i : shards[s]) {
      planned.push_back({tensors[i].name, tensors[i].dtype, tensors[i].shape});
      weight_map[tensors[i].name] = name;
      bytes += tensor_bytes(tensors[i].dtype, tensors[i].shape);
    }
    if (progress) progress("writing " + std::string(name) + " (" + size_text(bytes) + ")");
    auto written = write_safetensors(dir + "/" + name, planned, [&](std::size_t i, std::FILE* out) {
      drawer.draw(tensors[shards[s][i]], out);
    });
    if (!written) return written;
    total += bytes;
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}},
                                  {"weight_map", weight_map}};
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2) << "\n";
  // The tokenizer, its vocabulary no larger than the embedding (DeepSeek's is 128,815 tokens
  // for 129,280 rows); merges learned from 2 MB of text stop where no pair repeats.
  if (progress) progress("learning the tokenizer's merges");
  std::ofstream(dir + "/tokenizer.json")
      << train_tokenizer(synthetic_corpus(seed, 2'000'000),
                         static_cast<std::size_t>(config.vocab_size), special_tokens());
  // config.json last: a folder with one holds a whole checkpoint.
  std::ofstream config_out(dir + "/config.json");
  config_out << config_json(config);
  if (!config_out) return tl::unexpected(Error{dir + "/config.json: cannot be written"});
  return {};
}

}  // namespace warren::inference
