// `warren model init|info`: random-weight checkpoints in the official layout, and what a
// checkpoint holds and costs (inference/).
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "run_commands.hpp"
#include "warren/inference/model.hpp"

namespace warren::cli {

namespace {

using Json = nlohmann::ordered_json;

struct ModelFlags {
  std::string preset, out, weights;
  std::uint64_t seed = 0;
  bool json = false;
};

// Bad input is exit 2 (a folder that is no checkpoint, an unknown preset); a failure to write
// what was asked for is exit 1.
int fail(const std::string& command, const std::string& message, int status) {
  std::cerr << "warren model " << command << ": " << message << "\n";
  return status;
}

Json info_json(const inference::ModelInfo& info) {
  Json bytes = Json::object();
  for (const auto& [dtype, n] : info.bytes_by_dtype) bytes[dtype] = n;
  return {{"parameters", info.parameters},
          {"active_parameters", info.active_parameters},
          {"mtp_parameters", info.mtp_parameters},
          {"bytes", info.file_bytes},
          {"bytes_by_dtype", bytes},
          {"active_weight_bytes", info.active_weight_bytes},
          {"kv_bytes_per_token", info.kv_bytes_per_token},
          {"kv_fixed_bytes", info.kv_fixed_bytes}};
}

std::string count_text(std::uint64_t n) {
  char text[32];
  if (n >= 1'000'000'000)
    std::snprintf(text, sizeof text, "%.2fB", static_cast<double>(n) / 1e9);
  else
    std::snprintf(text, sizeof text, "%.2fM", static_cast<double>(n) / 1e6);
  return text;
}

std::string bytes_text(double bytes) {
  char text[32];
  if (bytes >= 1e9)
    std::snprintf(text, sizeof text, "%.2f GB", bytes / 1e9);
  else
    std::snprintf(text, sizeof text, "%.1f MB", bytes / 1e6);
  return text;
}

void print_info(const inference::Config& c, const inference::ModelInfo& info) {
  int csa = 0, hca = 0;
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int ratio = c.compress_ratios[static_cast<std::size_t>(l)];
    csa += ratio == 4;
    hca += ratio == 128;
  }
  std::printf("layers              %lld (%d CSA, %d HCA, %lld window-only) + %lld MTP\n",
              static_cast<long long>(c.num_hidden_layers), csa, hca,
              static_cast<long long>(c.num_hidden_layers - csa - hca),
              static_cast<long long>(c.num_nextn_predict_layers));
  std::printf("parameters          %s (MTP %s)\n", count_text(info.parameters).c_str(),
              count_text(info.mtp_parameters).c_str());
  std::printf("active per token    %s (%s of weights read)\n",
              count_text(info.active_parameters).c_str(),
              bytes_text(static_cast<double>(info.active_weight_bytes)).c_str());
  std::printf("size                %s:", bytes_text(static_cast<double>(info.file_bytes)).c_str());
  for (const auto& [dtype, n] : info.bytes_by_dtype)
    std::printf(" %s %s", dtype.c_str(), bytes_text(static_cast<double>(n)).c_str());
  std::printf(
      "\nKV cache            %.0f bytes per token, %s per sequence fixed "
      "(window rows, compressor state)\n",
      info.kv_bytes_per_token, bytes_text(static_cast<double>(info.kv_fixed_bytes)).c_str());
}

int init(const ModelFlags& f) {
  auto preset = inference::preset_named(f.preset);
  if (!preset) return fail("init", preset.error().message, 2);
  const inference::Config config = inference::preset_config(*preset);
  auto written =
      inference::write_random_checkpoint(config, f.out, f.seed, [&](const std::string& line) {
        if (!f.json) std::cerr << "warren: " << line << "\n";
      });
  if (!written) return fail("init", written.error().message, 1);
  auto checkpoint = inference::Checkpoint::open(f.out);
  if (!checkpoint)
    return fail("init", "wrote a checkpoint that does not open: " + checkpoint.error().message, 1);
  const auto info = inference::describe(*checkpoint);
  if (f.json) {
    Json out = {{"weights", f.out}, {"preset", f.preset}, {"seed", f.seed}};
    out.update(info_json(info));
    std::cout << out.dump(2) << "\n";
  } else {
    std::printf("%s: preset %s, seed %llu\n", f.out.c_str(), f.preset.c_str(),
                static_cast<unsigned long long>(f.seed));
    print_info(config, info);
  }
  return 0;
}

int info(const ModelFlags& f) {
  auto checkpoint = inference::Checkpoint::open(f.weights);
  if (!checkpoint) return fail("info", checkpoint.error().message, 2);
  const auto described = inference::describe(*checkpoint);
  if (f.json) {
    Json out = {{"weights", f.weights}};
    out.update(info_json(described));
    std::cout << out.dump(2) << "\n";
  } else {
    print_info(checkpoint->config(), described);
  }
  return 0;
}

}  // namespace

void add_model_commands(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ModelFlags>();
  CLI::App* group =
      app.add_subcommand("model", "the embedded DeepSeek-V4 engine's checkpoints (inference/)");
  group->require_subcommand(1);

  CLI::App* i = group->add_subcommand(
      "init", "write a random-weight checkpoint in the official layout (tests, benchmarks)");
  i->add_option("--preset", flags->preset, "tiny (tests), small (benchmarks) or flash-slice")
      ->required();
  i->add_option("--out", flags->out, "the folder to write it into (made; must hold none)")
      ->required();
  i->add_option("--seed", flags->seed, "the weights' seed (default 0)");
  i->add_flag("--json", flags->json, "print JSON");
  i->callback([flags, &exit_code] { exit_code = init(*flags); });

  CLI::App* n = group->add_subcommand(
      "info", "parameters, active parameters per token, bytes by dtype, KV bytes per token");
  n->add_option("--weights", flags->weights, "a checkpoint folder (config.json and shards)")
      ->required();
  n->add_flag("--json", flags->json, "print JSON");
  n->callback([flags, &exit_code] { exit_code = info(*flags); });
}

}  // namespace warren::cli
