// `warren model`'s commands (model_commands.cpp; bench: model_bench.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "warren/inference/model.hpp"

namespace warren::cli {

struct ModelFlags {
  std::string preset, out, weights, config, prompt, tokens, messages;
  std::int64_t context = 0;  // model info: the cache of a sequence this long (0: not shown)
  std::uint64_t seed = 0;
  std::int64_t max_tokens = 64, top_k = 0;
  double temperature = 0, top_p = 1;
  std::vector<std::string> stop;
  std::int64_t prompt_tokens = 128, gen_tokens = 16;
  std::int64_t sequences = 1;  // bench: decoding together
  unsigned threads = 0;
  std::string kernels = "auto";  // auto, reference, avx2, avx512
  bool json = false;
};

// The engine's options from the flags (--threads, --kernels).
warren::inference::EngineOptions engine_options(const ModelFlags& flags);

// One line on stderr, "warren model COMMAND: MESSAGE"; returns `status` (2: bad input, such as a
// folder that is no checkpoint or an unknown preset; 1: what was asked could not be written).
int model_fail(const std::string& command, const std::string& message, int status);

int model_bench(const ModelFlags& flags);

}  // namespace warren::cli
