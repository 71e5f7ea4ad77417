// libFuzzer target: the streaming parser in both modes, whole and cut where the input says, must
// never crash and must give the same result either way. scripts/fuzz.sh builds and runs it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "warren/toolcall/toolcall.hpp"

namespace tc = warren::toolcall;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // The first byte picks the mode, leniency and chunk size; the rest is the completion.
  const unsigned control = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  tc::ParserOptions options;
  options.mode = (control & 1) ? tc::Mode::Chat : tc::Mode::Thinking;
  options.lenient = (control & 2) != 0;
  options.id_seed = 1;
  const std::size_t chunk = 1 + (control >> 2);

  static const auto codec = tc::make_codec(tc::Format::V4);
  const auto whole = tc::parse_completion(*codec, text, options);
  const auto cut = tc::parse_completion(*codec, text, options, chunk);
  if (whole.has_value() != cut.has_value()) std::abort();
  if (whole.has_value() && tc::to_json(*whole) != tc::to_json(*cut)) std::abort();
  if (!whole.has_value() && whole.error().message != cut.error().message) std::abort();
  if (whole.has_value()) {
    // Every argument string must be what the events said; valid calls carry valid JSON.
    for (const auto& call : whole.value().tool_calls) {
      if (call.errors.empty() && !tc::Json::accept(call.arguments)) std::abort();
    }
  }
  return 0;
}
