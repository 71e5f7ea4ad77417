// `warren model init|info` as a user runs them: a checkpoint written and described, in text and
// JSON, and bad input refused in one line with exit 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "../cli/cli_util.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;

class ModelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("warren-model-cli-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
  }
  void TearDown() override { fs::remove_all(root); }
  fs::path root;
};

TEST_F(ModelCli, InitWritesACheckpointThatInfoDescribes) {
  const std::string dir = (root / "tiny").string();
  const Outcome init = warren("model init --preset tiny --out " + dir + " --seed 3 --json");
  ASSERT_EQ(init.status, 0) << init.err;
  const auto made = nlohmann::json::parse(init.out);
  EXPECT_EQ(made["preset"], "tiny");
  EXPECT_EQ(made["seed"], 3);
  EXPECT_GT(made["parameters"].get<std::uint64_t>(), 1'000'000u);
  EXPECT_LT(made["active_parameters"].get<std::uint64_t>(),
            made["parameters"].get<std::uint64_t>());
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));

  const Outcome info = warren("model info --weights " + dir + " --json");
  ASSERT_EQ(info.status, 0) << info.err;
  const auto described = nlohmann::json::parse(info.out);
  for (const char* field : {"parameters", "active_parameters", "bytes", "bytes_by_dtype",
                            "active_weight_bytes", "kv_bytes_per_token", "kv_fixed_bytes"})
    EXPECT_EQ(described[field], made[field]) << field;
  // Tiny's layers: CSA, HCA, CSA with 128-dim heads (64 no-RoPE, 64 RoPE) and 128-dim indexer
  // keys: an entry is 64 + 1 + 128 = 193 bytes, padded to 200; an indexer key 64 + 4.
  EXPECT_DOUBLE_EQ(described["kv_bytes_per_token"].get<double>(),
                   2 * (200 + 68) / 4.0 + 200 / 128.0);
  std::uint64_t by_dtype = 0;
  for (const auto& [dtype, n] : described["bytes_by_dtype"].items())
    by_dtype += n.get<std::uint64_t>();
  EXPECT_EQ(by_dtype, described["bytes"].get<std::uint64_t>());
  // The shards hold the tensors' bytes and their headers.
  std::uintmax_t shard_bytes = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".safetensors") shard_bytes += entry.file_size();
  EXPECT_GT(shard_bytes, described["bytes"].get<std::uint64_t>());

  const Outcome text = warren("model info --weights " + dir);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("layers              4 (2 CSA, 1 HCA, 1 window-only) + 1 MTP"),
            std::string::npos)
      << text.out;
}

TEST_F(ModelCli, GenerateAndLogitsRunTheEngine) {
  const std::string dir = (root / "tiny").string();
  ASSERT_EQ(warren("model init --preset tiny --out " + dir).status, 0);
  const Outcome logits = warren("model logits --weights " + dir + " --tokens 0,17,900 --json");
  ASSERT_EQ(logits.status, 0) << logits.err;
  const auto l = nlohmann::json::parse(logits.out);
  const auto values = l["logits"].get<std::vector<float>>();
  ASSERT_EQ(values.size(), 2048u);
  EXPECT_EQ(l["argmax"], std::max_element(values.begin(), values.end()) - values.begin());

  // Greedy from those tokens: its first token is that argmax; the same again on a second run.
  const std::string greedy =
      "model generate --weights " + dir + " --tokens 0,17,900 --max-tokens 6 --json";
  const Outcome first = warren(greedy), again = warren(greedy);
  ASSERT_EQ(first.status, 0) << first.err;
  const auto g = nlohmann::json::parse(first.out);
  EXPECT_EQ(g["tokens"].size(), 6u);
  EXPECT_EQ(g["tokens"][0], l["argmax"]);
  EXPECT_EQ(g["finish_reason"], "length");
  EXPECT_EQ(g["prompt_tokens"], 3);
  EXPECT_EQ(first.out, again.out);
  for (const auto& p : g["logprobs"]) EXPECT_LT(p.get<double>(), 0.0);

  // Sampling: the same seed gives the same tokens, the text is the tokens decoded.
  const std::string sampled = "model generate --weights " + dir +
                              " --prompt 'Hello there' --temperature 1 --top-p 0.9 --seed 4 "
                              "--max-tokens 8 --json";
  const Outcome s1 = warren(sampled), s2 = warren(sampled);
  ASSERT_EQ(s1.status, 0) << s1.err;
  EXPECT_EQ(s1.out, s2.out);

  // Streamed, the text is the JSON's, control characters as '?': a character whose bytes two
  // tokens share is printed whole once its last byte comes, not as two U+FFFD.
  const std::string streaming = "model generate --weights " + dir +
                                " --tokens 5,6,7 --temperature 1 --seed 9 --max-tokens 300";
  const Outcome streamed = warren(streaming), whole = warren(streaming + " --json");
  ASSERT_EQ(streamed.status, 0) << streamed.err;
  const std::string text = nlohmann::json::parse(whole.out)["text"];
  std::string expected;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 =
        c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    expected += c < 0x20 || c == 0x7F || c1 ? std::string("?") : std::string(1, text[i]);
    if (c1) ++i;
  }
  EXPECT_EQ(streamed.out, expected + "\n");
  EXPECT_NE(text.find("\xE3\x81"), std::string::npos);  // Japanese, from byte tokens

  // A chat request encoded by the V4 encoder: the prompt is its tokens.
  const Outcome chat =
      warren("model generate --weights " + dir + " --messages " + WARREN_SOURCE_DIR +
             "/tests/toolcall/data/test_input_2.json --max-tokens 2 --json");
  ASSERT_EQ(chat.status, 0) << chat.err;
  EXPECT_GT(nlohmann::json::parse(chat.out)["prompt_tokens"].get<int>(), 50);
}

TEST_F(ModelCli, BenchMeasuresTheEngineAndTheMachine) {
  const std::string dir = (root / "tiny").string();
  ASSERT_EQ(warren("model init --preset tiny --out " + dir).status, 0);
  const Outcome bench = warren("model bench --weights " + dir +
                               " --prompt-tokens 20 --gen-tokens 3 --threads 2 --json");
  ASSERT_EQ(bench.status, 0) << bench.err;
  const auto b = nlohmann::json::parse(bench.out);
  EXPECT_EQ(b["threads"], 2);
  for (const char* positive :
       {"prefill_tokens_per_s", "decode_tokens_per_s", "read_bandwidth_bytes_per_s",
        "roofline_fraction", "cache_bytes_held", "resident_bytes"})
    EXPECT_GT(b[positive].get<double>(), 0) << positive;
  // What a decoded token reads: the active weights and, at 21 tokens, 21 window rows of 200
  // bytes in each of the 4 layers, 5 CSA entries and 5 indexer keys in each of 2 layers.
  const auto info = nlohmann::json::parse(warren("model info --weights " + dir + " --json").out);
  EXPECT_EQ(b["bytes_read_per_decoded_token"].get<double>(),
            info["active_weight_bytes"].get<double>() + 4 * 21 * 200 + 2 * 5 * (200 + 68));
  // Prefill against the BF16 dot-product peak: two FLOPs per active parameter, the head's
  // (vocabulary 2,048 by hidden 256 on the tiny preset) for the last token alone.
  const double head = info["head_parameters"].get<double>();
  EXPECT_EQ(head, 2048 * 256);
  EXPECT_EQ(b["prefill_flops_per_token"].get<double>(),
            2 * (info["active_parameters"].get<double>() - head));
  // The peak is AVX-512 BF16's dot product where the CPU has it, else AVX2's float FMA.
  const bool avx512bf16 = __builtin_cpu_supports("avx512bf16"),
             avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  EXPECT_EQ(b["bf16_peak_instruction"], avx512bf16 ? "vdpbf16ps" : (avx2 ? "vfmadd231ps" : "none"));
  if (avx512bf16 || avx2) {
    EXPECT_GT(b["bf16_peak_flops"].get<double>(), 1e9);
    EXPECT_DOUBLE_EQ(b["prefill_peak_fraction"].get<double>(),
                     b["prefill_tokens_per_s"].get<double>() *
                         (b["prefill_flops_per_token"].get<double>() + 2 * head / 20) /
                         b["bf16_peak_flops"].get<double>());
  } else {
    EXPECT_EQ(b["bf16_peak_flops"].get<double>(), 0);
  }
  // Three sequences decoding together: three tokens a step; --sequences 0 is refused.
  const Outcome three = warren("model bench --weights " + dir +
                               " --prompt-tokens 5 --gen-tokens 2 --sequences 3 --json");
  ASSERT_EQ(three.status, 0) << three.err;
  const auto t = nlohmann::json::parse(three.out);
  EXPECT_EQ(t["sequences"], 3);
  EXPECT_DOUBLE_EQ(t["decode_tokens_per_s"].get<double>(),
                   3 * t["decode_steps_per_s"].get<double>());
  EXPECT_EQ(warren("model bench --weights " + dir + " --sequences 0").status, 2);
}

// The official models' KV cache at 1M tokens, from their config.json alone, by the engine's
// layout: 43 (Flash) and 61 (Pro) layers each hold 128 window rows of 584 bytes; a CSA layer an
// entry and a 68-byte indexer key per 4 tokens, and the partial blocks of its two compressors (the
// whole previous block of 4, in double: 4 x 2 x 1024 x 8 and 4 x 2 x 256 x 8 bytes); an HCA
// layer an entry per 128 tokens.
TEST_F(ModelCli, InfoGivesTheOfficialModelsKvCacheAtAMillionTokens) {
  const std::uint64_t tokens = 1 << 20;
  auto expected = [&](std::uint64_t layers, std::uint64_t csa, std::uint64_t hca) {
    return layers * 128 * 584 +
           csa * (tokens / 4 * (584 + 68) + 4 * 2 * 1024 * 8 + 4 * 2 * 256 * 8) +
           hca * (tokens / 128 * 584);
  };
  for (const auto& [model, bytes] :
       {std::pair{"flash", expected(43, 21, 20)}, std::pair{"pro", expected(61, 30, 31)}}) {
    const Outcome info =
        warren(std::string("model info --config ") + WARREN_SOURCE_DIR +
               "/tests/inference/data/config-" + model + ".json --context 1048576 --json");
    ASSERT_EQ(info.status, 0) << info.err;
    const auto described = nlohmann::json::parse(info.out);
    EXPECT_EQ(described["context"], tokens);
    EXPECT_EQ(described["kv_cache_bytes"].get<std::uint64_t>(), bytes) << model;
  }
}

TEST_F(ModelCli, BadInputIsOneLineAndExit2) {
  const Outcome preset = warren("model init --preset huge --out " + (root / "x").string());
  EXPECT_EQ(preset.status, 2);
  EXPECT_EQ(preset.err, "warren model init: unknown preset huge (tiny, small or flash-slice)\n");
  EXPECT_FALSE(fs::exists(root / "x"));
  const Outcome folder = warren("model info --weights " + root.string());
  EXPECT_EQ(folder.status, 2);
  EXPECT_EQ(folder.err,
            "warren model info: " + root.string() + ": not a checkpoint (no config.json)\n");
  ASSERT_EQ(warren("model init --preset tiny --out " + (root / "m").string()).status, 0);
  const Outcome out_of_range =
      warren("model logits --weights " + (root / "m").string() + " --tokens 1,99999");
  EXPECT_EQ(out_of_range.status, 2);
  EXPECT_EQ(out_of_range.err,
            "warren model logits: token id 99999 is outside the vocabulary (0 to 2047)\n");
  const Outcome not_ids =
      warren("model logits --weights " + (root / "m").string() + " --tokens 1,x");
  EXPECT_EQ(not_ids.status, 2);
  EXPECT_EQ(not_ids.err, "warren model logits: --tokens: x is not a token id\n");
  const Outcome two =
      warren("model generate --weights " + (root / "m").string() + " --tokens 1 --prompt hi");
  EXPECT_EQ(two.status, 2);
  EXPECT_EQ(two.err, "warren model generate: give one of --prompt, --tokens or --messages\n");
  fs::remove(root / "m" / "tokenizer.json");
  const Outcome no_tokenizer =
      warren("model generate --weights " + (root / "m").string() + " --prompt hi");
  EXPECT_EQ(no_tokenizer.status, 2);
  EXPECT_EQ(no_tokenizer.err, "warren model generate: " + (root / "m").string() +
                                  ": no tokenizer.json (give token ids instead)\n");
  const Outcome missing = warren("model info");
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
}

}  // namespace
}  // namespace warren::testing
