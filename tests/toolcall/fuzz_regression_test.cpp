// Replays every input the fuzzer kept (tests/toolcall/fuzz_corpus/): each must parse or fail
// cleanly, the same way whole and in small chunks, in both modes.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.hpp"

namespace warren::toolcall {
namespace {

TEST(FuzzRegressions, CorpusInputsParseTheSameWholeAndChunked) {
  const std::filesystem::path dir = std::string(WARREN_SOURCE_DIR) + "/tests/toolcall/fuzz_corpus";
  std::size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string data = testing::read_file(entry.path());
    ++inputs;
    for (Mode mode : {Mode::Thinking, Mode::Chat}) {
      for (bool lenient : {false, true}) {
        const auto whole = testing::parse(data, testing::options(mode, lenient));
        for (std::size_t chunk : {1u, 3u, 17u}) {
          const auto cut = testing::parse(data, testing::options(mode, lenient), chunk);
          ASSERT_EQ(whole.has_value(), cut.has_value()) << entry.path();
          if (whole.has_value()) {
            EXPECT_EQ(to_json(*whole), to_json(*cut)) << entry.path();
          } else {
            EXPECT_EQ(whole.error().message, cut.error().message) << entry.path();
          }
        }
      }
    }
  }
  EXPECT_GE(inputs, 5u) << "the corpus should hold the seed inputs at least";
}

// The same files read as the fuzz target reads them: the first byte picks mode, leniency and
// chunk size (see tests/fuzz/stream_parser_fuzz.cpp), so a kept crash replays exactly.
TEST(FuzzRegressions, CorpusInputsReplayAsTheFuzzerRanThem) {
  const std::filesystem::path dir = std::string(WARREN_SOURCE_DIR) + "/tests/toolcall/fuzz_corpus";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string data = testing::read_file(entry.path());
    if (data.empty()) continue;
    const unsigned control = static_cast<unsigned char>(data[0]);
    const std::string_view text = std::string_view(data).substr(1);
    const ParserOptions o =
        testing::options((control & 1) ? Mode::Chat : Mode::Thinking, (control & 2) != 0);
    const auto whole = testing::parse(text, o);
    const auto cut = testing::parse(text, o, 1 + (control >> 2));
    ASSERT_EQ(whole.has_value(), cut.has_value()) << entry.path();
    if (whole.has_value()) {
      EXPECT_EQ(to_json(*whole), to_json(*cut)) << entry.path();
      for (const auto& call : whole->tool_calls) {
        if (call.errors.empty()) {
          EXPECT_TRUE(Json::accept(call.arguments)) << entry.path();
        }
      }
    } else {
      EXPECT_EQ(whole.error().message, cut.error().message) << entry.path();
    }
  }
}

}  // namespace
}  // namespace warren::toolcall
