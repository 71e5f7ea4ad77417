// `warren model init|info`: random-weight checkpoints in the official layout, and what a
// checkpoint holds and costs (inference/).
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <nlohmann/json.hpp>

#include "io.hpp"
#include "model_commands.hpp"
#include "run_commands.hpp"
#include "warren/inference/model.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::cli {

namespace {

using Json = nlohmann::ordered_json;

int fail(const std::string& command, const std::string& message, int status) {
  return model_fail(command, message, status);
}

Json info_json(const inference::ModelInfo& info) {
  Json bytes = Json::object();
  for (const auto& [dtype, n] : info.bytes_by_dtype) bytes[dtype] = n;
  return {{"parameters", info.parameters},
          {"active_parameters", info.active_parameters},
          {"head_parameters", info.head_parameters},
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

// A checkpoint's figures (--weights), or a config.json's alone (--config: an official model's,
// whose weights are not here); with --context N, the cache of a sequence of N tokens.
int info(const ModelFlags& f) {
  std::optional<inference::Checkpoint> checkpoint;
  std::optional<inference::Config> config;
  if (!f.config.empty()) {
    auto loaded = inference::load_config(f.config);
    if (!loaded) return fail("info", loaded.error().message, 2);
    config = std::move(*loaded);
  } else {
    auto opened = inference::Checkpoint::open(f.weights);
    if (!opened) return fail("info", opened.error().message, 2);
    checkpoint.emplace(std::move(*opened));
    config = checkpoint->config();
  }
  const auto described =
      checkpoint ? inference::describe(*checkpoint) : inference::describe(*config);
  const std::uint64_t cache = inference::kv_cache_bytes(*config, f.context);
  if (f.json) {
    Json out = checkpoint ? Json{{"weights", f.weights}} : Json{{"config", f.config}};
    out.update(info_json(described));
    if (f.context > 0) out.update({{"context", f.context}, {"kv_cache_bytes", cache}});
    std::cout << out.dump(2) << "\n";
  } else {
    print_info(*config, described);
    if (f.context > 0)
      std::printf("%-18s  %s (%.0f bytes a token)\n",
                  ("KV at " + std::to_string(f.context) + " tokens").c_str(),
                  bytes_text(static_cast<double>(cache)).c_str(),
                  static_cast<double>(cache) / static_cast<double>(f.context));
  }
  return 0;
}

// "1,2,3" or "1 2 3" -> ids; nullopt (with `error` set) when a part is not a number.
std::optional<std::vector<std::int32_t>> parse_ids(const std::string& text, std::string& error) {
  std::vector<std::int32_t> ids;
  std::string part;
  auto flush = [&]() -> bool {
    if (part.empty()) return true;
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(part.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || value < 0 || value > INT32_MAX) {
      error = "--tokens: " + part + " is not a token id";
      return false;
    }
    ids.push_back(static_cast<std::int32_t>(value));
    part.clear();
    return true;
  };
  for (char ch : text) {
    if (ch == ',' || ch == ' ') {
      if (!flush()) return std::nullopt;
    } else {
      part += ch;
    }
  }
  if (!flush()) return std::nullopt;
  if (ids.empty()) {
    error = "--tokens: no token ids";
    return std::nullopt;
  }
  return ids;
}

// The prompt's ids: --tokens as given, --prompt tokenized, --messages encoded by toolcall's V4
// encoder (thinking mode) then tokenized.
std::optional<std::vector<std::int32_t>> prompt_ids(const inference::Engine& engine,
                                                    const ModelFlags& f, std::string& error) {
  const int given = !f.tokens.empty() + !f.prompt.empty() + !f.messages.empty();
  if (given != 1) {
    error = "give one of --prompt, --tokens or --messages";
    return std::nullopt;
  }
  if (!f.tokens.empty()) return parse_ids(f.tokens, error);
  auto tokenizer = engine.tokenizer();
  if (!tokenizer) {
    error = tokenizer.error().message;
    return std::nullopt;
  }
  std::string text = f.prompt;
  if (!f.messages.empty()) {
    auto file = read_input(f.messages, error);
    if (!file) return std::nullopt;
    auto json = toolcall::parse_json(*file);
    if (!json) {
      error = f.messages + ": " + json.error().message;
      return std::nullopt;
    }
    auto request = toolcall::chat_request_from_json(*json);
    if (!request) {
      error = f.messages + ": " + request.error().message;
      return std::nullopt;
    }
    auto prompt = toolcall::make_codec(toolcall::Format::V4)->encode(*request, {});
    if (!prompt) {
      error = f.messages + ": " + prompt.error().message;
      return std::nullopt;
    }
    text = *prompt;
  }
  return (*tokenizer)->encode(text);
}

// --kernels: which linear-layer kernels the engine runs.
void add_kernels_flag(CLI::App* command, ModelFlags& flags) {
  command
      ->add_option("--kernels", flags.kernels,
                   "auto (default: the fastest this CPU runs), reference, avx2 or avx512")
      ->check(CLI::IsMember({"auto", "reference", "avx2", "avx512"}));
}

int logits(const ModelFlags& f) {
  auto engine = inference::Engine::open(f.weights, engine_options(f));
  if (!engine) return fail("logits", engine.error().message, 2);
  std::string error;
  auto ids = parse_ids(f.tokens, error);
  if (!ids) return fail("logits", error, 2);
  auto sequence = engine->start();
  auto out = engine->feed(sequence, *ids);
  if (!out) return fail("logits", out.error().message, 2);
  const auto best = std::max_element(out->begin(), out->end()) - out->begin();
  if (f.json) {
    std::cout << Json{{"tokens", *ids}, {"argmax", best}, {"logits", *out}}.dump() << "\n";
  } else {
    std::printf("%zu logits after %zu tokens; the largest: id %td (%.6f)\n", out->size(),
                ids->size(), best, static_cast<double>((*out)[static_cast<std::size_t>(best)]));
    for (float v : *out) std::printf("%.9g\n", static_cast<double>(v));
  }
  return 0;
}

int generate(const ModelFlags& f) {
  auto engine = inference::Engine::open(f.weights, engine_options(f));
  if (!engine) return fail("generate", engine.error().message, 2);
  std::string error;
  auto ids = prompt_ids(*engine, f, error);
  if (!ids) return fail("generate", error, 2);
  auto tokenizer = engine->tokenizer();
  inference::GenerateOptions options;
  options.max_tokens = f.max_tokens;
  options.sampling = {f.temperature, f.top_k, f.top_p, f.seed};
  options.stop = f.stop;
  auto sequence = engine->start();
  // Text streams as it is made; JSON waits for the whole answer. A token may end inside a
  // character (byte-level BPE): its first bytes wait for the next token's.
  std::string held;
  auto generated = inference::generate(*engine, sequence, *ids, options, [&](std::int32_t token) {
    if (f.json || !tokenizer) return;
    const std::int32_t one[] = {token};
    held += (*tokenizer)->decode(one);
    const std::size_t ready = held.size() - toolcall::incomplete_utf8_tail(held);
    std::cout << printable(std::string_view(held).substr(0, ready)) << std::flush;
    held.erase(0, ready);
  });
  if (!held.empty()) std::cout << printable(held) << std::flush;
  if (!generated) return fail("generate", generated.error().message, 2);
  if (f.json) {
    std::cout << Json{{"prompt_tokens", ids->size()},
                      {"tokens", generated->tokens},
                      {"logprobs", generated->logprobs},
                      {"text", generated->text},
                      {"finish_reason", inference::to_string(generated->finish)}}
                     // A model's text need not be valid UTF-8: bad bytes become U+FFFD.
                     .dump(-1, ' ', false, Json::error_handler_t::replace)
              << "\n";
  } else {
    std::cout << "\n";
    std::cerr << "warren: " << ids->size() << " prompt tokens, " << generated->tokens.size()
              << " generated, finish: " << inference::to_string(generated->finish) << "\n";
  }
  return 0;
}

}  // namespace

int model_fail(const std::string& command, const std::string& message, int status) {
  std::cerr << "warren model " << command << ": " << message << "\n";
  return status;
}

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
  auto* weights =
      n->add_option("--weights", flags->weights, "a checkpoint folder (config.json and shards)");
  auto* config = n->add_option("--config", flags->config,
                               "a config.json alone: an official model's figures without weights");
  weights->excludes(config);
  n->add_option("--context", flags->context, "also the KV cache of a sequence of N tokens")
      ->check(CLI::PositiveNumber);
  n->add_flag("--json", flags->json, "print JSON");
  n->callback([flags, &exit_code] {
    exit_code = flags->weights.empty() && flags->config.empty()
                    ? fail("info", "--weights DIR or --config FILE is required", 2)
                    : info(*flags);
  });

  CLI::App* l = group->add_subcommand(
      "logits", "the last position's logits after a sequence of token ids (for comparisons)");
  add_kernels_flag(l, *flags);
  l->add_option("--weights", flags->weights, "a checkpoint folder")->required();
  l->add_option("--tokens", flags->tokens, "token ids, comma- or space-separated")->required();
  l->add_flag("--json", flags->json, "print JSON");
  l->callback([flags, &exit_code] { exit_code = logits(*flags); });

  CLI::App* g = group->add_subcommand("generate", "continue a prompt with the embedded engine");
  g->add_option("--weights", flags->weights, "a checkpoint folder")->required();
  g->add_option("--prompt", flags->prompt, "the prompt's text, tokenized as it is");
  g->add_option("--tokens", flags->tokens, "the prompt's token ids, comma- or space-separated");
  g->add_option("--messages", flags->messages,
                "an OpenAI-format chat request or message list (JSON file, - for stdin), "
                "encoded by the V4 prompt encoder");
  g->add_option("--max-tokens", flags->max_tokens, "tokens to generate at most (default 64)")
      ->check(CLI::Range(1, 1 << 20));
  g->add_option("--temperature", flags->temperature, "0 (default): greedy")
      ->check(CLI::Range(0.0, 100.0));
  g->add_option("--top-k", flags->top_k, "keep the k most likely tokens (0: all)")
      ->check(CLI::NonNegativeNumber);
  g->add_option("--top-p", flags->top_p, "nucleus sampling (default 1)")
      ->check(CLI::Range(0.0, 1.0));
  g->add_option("--seed", flags->seed, "the sampler's seed (default 0)");
  add_kernels_flag(g, *flags);
  g->add_option("--stop", flags->stop, "stop before this text; repeat for more");
  g->add_flag("--json", flags->json, "print JSON: tokens, logprobs, text, finish_reason");
  g->callback([flags, &exit_code] { exit_code = generate(*flags); });

  CLI::App* b = group->add_subcommand(
      "bench", "prefill and decode speed, the machine's read bandwidth and the roofline reached");
  b->add_option("--weights", flags->weights, "a checkpoint folder")->required();
  b->add_option("--prompt-tokens", flags->prompt_tokens, "the prefill's length (default 128)")
      ->check(CLI::Range(1, 1 << 20));
  b->add_option("--gen-tokens", flags->gen_tokens, "tokens decoded after it (default 16)")
      ->check(CLI::Range(1, 1 << 20));
  b->add_option("--sequences", flags->sequences,
                "sequences decoding together, one token of each a step (default 1)")
      ->check(CLI::Range(1, 256));
  b->add_option("--threads", flags->threads, "threads (default 0: one per core)");
  add_kernels_flag(b, *flags);
  b->add_flag("--json", flags->json, "print JSON");
  b->callback([flags, &exit_code] { exit_code = model_bench(*flags); });
}

inference::EngineOptions engine_options(const ModelFlags& flags) {
  inference::EngineOptions options{.threads = flags.threads};
  if (auto named = inference::parse_kernels(flags.kernels)) options.kernels = *named;
  return options;
}

}  // namespace warren::cli
