// The forward pass against an independent reference (tests/inference/reference.py: PyTorch in
// float64, the whole sequence at once, written from the architecture notes): logits after a
// prompt long enough to cross the 128-token window and many 4- and 128-token compression
// boundaries (with the indexer choosing among more blocks than its top-k), greedy generation,
// and decoding after a prefill at each kind of position.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "../cli/cli_util.hpp"
#include "warren/inference/model.hpp"

namespace inf = warren::inference;
namespace fs = std::filesystem;
using warren::testing::slurp;

namespace {

class Engine : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir = fs::temp_directory_path() / ("warren-engine-" + std::to_string(getpid()));
    fs::remove_all(dir);
    auto written =
        inf::write_random_checkpoint(inf::preset_config(inf::Preset::Tiny), dir.string(), 7);
    ASSERT_TRUE(written) << written.error().message;
  }
  static void TearDownTestSuite() { fs::remove_all(dir); }

  static std::vector<std::int32_t> random_tokens(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::int32_t> tokens;
    for (std::size_t i = 0; i < n; ++i) tokens.push_back(static_cast<std::int32_t>(rng() % 2048));
    return tokens;
  }

  // The reference's answer for `tokens` (with `--generate N` when asked).
  static nlohmann::json reference(const std::vector<std::int32_t>& tokens, int generate = 0) {
    std::string ids;
    for (auto t : tokens) {
      if (!ids.empty()) ids += ',';
      ids += std::to_string(t);
    }
    const fs::path out = dir / "reference.json";
    const std::string command =
        "/usr/bin/python3 " WARREN_SOURCE_DIR "/tests/inference/reference.py " + dir.string() +
        " --tokens " + ids + (generate ? " --generate " + std::to_string(generate) : "") + " > " +
        out.string();
    EXPECT_EQ(std::system(command.c_str()), 0)
        << "the reference needs Debian's python3-torch: run scripts/setup.sh";
    return nlohmann::json::parse(slurp(out));
  }

  static double relative_l2(const std::vector<float>& ours, const std::vector<double>& theirs) {
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) {
      diff += (ours[i] - theirs[i]) * (ours[i] - theirs[i]);
      norm += theirs[i] * theirs[i];
    }
    return std::sqrt(diff / norm);
  }

  static inline fs::path dir;
};

}  // namespace

TEST_F(Engine, LogitsAfterSixHundredTokensMatchTheReference) {
  // 640 tokens: 5 HCA blocks, 160 CSA blocks (the indexer picks 16), the window slid 512 times.
  const auto tokens = random_tokens(640, 1);
  const auto expected = reference(tokens)["logits"].get<std::vector<double>>();
  for (inf::Kernels kernels : {inf::Kernels::Reference, inf::best_kernels()}) {
    auto engine = inf::Engine::open(dir.string(), {.threads = 2, .kernels = kernels});
    ASSERT_TRUE(engine) << engine.error().message;
    auto sequence = engine->start();
    auto logits = engine->feed(sequence, tokens);
    ASSERT_TRUE(logits) << logits.error().message;
    ASSERT_EQ(logits->size(), expected.size());
    const double error = relative_l2(*logits, expected);
    EXPECT_LE(error, 1e-3) << to_string(kernels);
    // Both compute in double: what remains is the float the logits are returned in (and for the
    // fast kernels, the order of their sums).
    EXPECT_LE(error, 1e-6) << to_string(kernels) << ": relative L2 " << error;
  }
}

// AVX2 and AVX-512 sum in the same order (src/kernels.hpp): the same bits. A CPU without one of
// them refuses it by name.
TEST_F(Engine, TheAvx2AndAvx512KernelsGiveTheSameLogits) {
  const auto tokens = random_tokens(150, 5);
  std::vector<std::vector<float>> results;
  for (inf::Kernels kernels : {inf::Kernels::Avx2, inf::Kernels::Avx512}) {
    auto engine = inf::Engine::open(dir.string(), {.threads = 2, .kernels = kernels});
    if (!inf::supported(kernels)) {
      ASSERT_FALSE(engine);
      EXPECT_EQ(engine.error().message, "the " + std::string(to_string(kernels)) +
                                            " kernels need a CPU that has them; this one has not");
      continue;
    }
    ASSERT_TRUE(engine) << engine.error().message;
    auto sequence = engine->start();
    results.push_back(*engine->feed(sequence, tokens));
  }
  if (results.size() == 2) {
    EXPECT_EQ(results[0], results[1]);
  }
}

TEST_F(Engine, GreedyGenerationMatchesTheReference) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  const auto prompt = random_tokens(16, 2);
  auto sequence = engine->start();
  inf::GenerateOptions options;
  options.max_tokens = 64;
  auto generated = inf::generate(*engine, sequence, prompt, options);
  ASSERT_TRUE(generated) << generated.error().message;
  const auto expected = reference(prompt, 64)["generated"].get<std::vector<std::int32_t>>();
  EXPECT_EQ(generated->tokens, expected);
}

TEST_F(Engine, DecodingAfterAPrefillIsThePrefillOfTheWhole) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  const auto tokens = random_tokens(262, 3);
  auto whole = engine->start();
  std::vector<std::vector<float>> at;  // logits after each length
  for (std::size_t n = 0; n < tokens.size(); ++n)
    at.push_back(*engine->feed(whole, {&tokens[n], 1}));
  // A prefill ending inside the window, inside a 4-block, and at a 128-boundary, then decoding.
  for (std::size_t split : {100u, 130u, 256u}) {
    auto sequence = engine->start();
    auto logits = engine->feed(sequence, {tokens.data(), split});
    EXPECT_EQ(*logits, at[split - 1]) << "prefill of " << split;
    for (std::size_t n = split; n < tokens.size(); ++n) {
      logits = engine->feed(sequence, {&tokens[n], 1});
      ASSERT_EQ(*logits, at[n]) << "decode at " << n << " after a prefill of " << split;
    }
  }
}

// One decode step of several sequences at once (their tokens through the layers together) gives
// each sequence the logits it gets fed alone, at different lengths: inside the first 4-block, past
// the window with the indexer choosing, and in between; and leaves each where feed would. On two
// threads: a step's few tokens an expert split the experts among the threads, where a sequence fed
// alone splits each expert's rows.
TEST_F(Engine, AStepOfSeveralSequencesGivesEachTheLogitsItGetsAlone) {
  auto engine = inf::Engine::open(dir.string(), {.threads = 2});
  ASSERT_TRUE(engine);
  const auto tokens = random_tokens(300, 5);
  std::vector<inf::Sequence> together, alone;
  for (std::size_t length : {3u, 140u, 262u}) {
    together.push_back(engine->start());
    ASSERT_TRUE(engine->feed(together.back(), {tokens.data() + length % 7, length}));
    alone.push_back(together.back().snapshot());
  }
  for (std::size_t step = 0; step < 6; ++step) {
    std::vector<inf::Sequence*> sequences;
    std::vector<std::int32_t> next;
    for (std::size_t i = 0; i < together.size(); ++i) {
      sequences.push_back(&together[i]);
      next.push_back(tokens[(37 * step + 11 * i) % tokens.size()]);
    }
    auto logits = engine->step(sequences, next);
    ASSERT_TRUE(logits) << logits.error().message;
    ASSERT_EQ(logits->size(), together.size());
    for (std::size_t i = 0; i < together.size(); ++i) {
      auto want = engine->feed(alone[i], {&next[i], 1});
      ASSERT_EQ((*logits)[i], *want) << "sequence " << i << " step " << step;
      EXPECT_EQ(together[i].length(), alone[i].length());
    }
  }
  // A sequence given twice, or a token outside the vocabulary: an error, and nothing fed.
  const std::int64_t length = together[0].length();
  std::vector<inf::Sequence*> twice{&together[0], &together[1], &together[0]};
  std::vector<std::int32_t> three{1, 2, 3};
  auto refused = engine->step(twice, three);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "sequence 2 is also sequence 0 of the same step");
  std::vector<inf::Sequence*> two{&together[0], &together[1]};
  std::vector<std::int32_t> outside{1, static_cast<std::int32_t>(engine->config().vocab_size)};
  EXPECT_FALSE(engine->step(two, outside));
  EXPECT_FALSE(engine->step(two, three));
  EXPECT_EQ(together[0].length(), length);
  EXPECT_EQ(together[1].length(), alone[1].length());
}

// A snapshot at any token resumes exactly: inside the window, inside a 4-block, at a 128-block's
// end, past the window; the sequence it was taken from goes on unchanged.
TEST_F(Engine, ASnapshotResumesExactlyWhereItWasTaken) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  const auto tokens = random_tokens(300, 8);
  auto whole = engine->start();
  std::vector<std::vector<float>> at;
  for (std::size_t n = 0; n < tokens.size(); ++n)
    at.push_back(*engine->feed(whole, {&tokens[n], 1}));
  auto sequence = engine->start();
  std::size_t fed = 0;
  for (std::size_t split : {50u, 131u, 256u, 290u}) {
    ASSERT_TRUE(engine->feed(sequence, {tokens.data() + fed, split - fed}));
    fed = split;
    auto copy = sequence.snapshot();
    EXPECT_EQ(copy.length(), static_cast<std::int64_t>(split));
    EXPECT_EQ(copy.cache_bytes(), sequence.cache_bytes());
    for (std::size_t n = split; n < std::min(split + 10, tokens.size()); ++n)
      ASSERT_EQ(*engine->feed(copy, {&tokens[n], 1}), at[n]) << "at " << n << " from " << split;
  }
  EXPECT_EQ(*engine->feed(sequence, {tokens.data() + fed, tokens.size() - fed}), at.back());
}

// Past the window, the cache grows by the compact formats' bytes and nothing else: 256 tokens
// later, at the same place in every block, by 256 times `warren model info`'s bytes per token.
TEST_F(Engine, TheCacheGrowsByTheCompactBytesPerToken) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  const auto tokens = random_tokens(512, 9);
  auto sequence = engine->start();
  ASSERT_TRUE(engine->feed(sequence, {tokens.data(), 256}));
  const std::uint64_t before = sequence.cache_bytes();
  ASSERT_TRUE(engine->feed(sequence, {tokens.data() + 256, 256}));
  const inf::ModelInfo info = inf::describe(engine->config());
  EXPECT_EQ(static_cast<double>(sequence.cache_bytes() - before), 256 * info.kv_bytes_per_token);
  EXPECT_GT(info.kv_bytes_per_token, 0);
  EXPECT_LE(sequence.cache_bytes(), info.kv_fixed_bytes + 512 * info.kv_bytes_per_token);
}

// kv_cache_bytes (what `warren model info --context N` prints) is the engine's own cache to the
// byte, at every kind of length: inside a 4-block, at its end, past the window, at 128-blocks.
TEST_F(Engine, TheCacheHoldsWhatKvCacheBytesSays) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  const auto tokens = random_tokens(300, 10);
  auto sequence = engine->start();
  EXPECT_EQ(sequence.cache_bytes(), 0u);
  std::size_t fed = 0;
  for (std::size_t length : {1u, 3u, 4u, 5u, 127u, 128u, 129u, 256u, 300u}) {
    ASSERT_TRUE(engine->feed(sequence, {tokens.data() + fed, length - fed}));
    fed = length;
    EXPECT_EQ(sequence.cache_bytes(),
              inf::kv_cache_bytes(engine->config(), static_cast<std::int64_t>(length)))
        << "after " << length << " tokens";
  }
}

TEST_F(Engine, TheLogitsAreTheSameForAnyNumberOfThreads) {
  const auto tokens = random_tokens(150, 4);
  std::vector<std::vector<float>> results;
  for (unsigned threads : {1u, 2u, 3u}) {
    auto engine = inf::Engine::open(dir.string(), {.threads = threads});
    ASSERT_TRUE(engine);
    auto sequence = engine->start();
    results.push_back(*engine->feed(sequence, tokens));
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

// A stop string ends the text before its first occurrence, also when it spans tokens: found the
// moment the token that completes it is chosen, and not decoded from the start at every token.
TEST_F(Engine, AStopStringSpanningTokensEndsTheText) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  auto tokenizer = engine->tokenizer();
  ASSERT_TRUE(tokenizer) << tokenizer.error().message;
  const auto prompt = random_tokens(20, 12);
  inf::GenerateOptions options{.max_tokens = 40};
  auto start = engine->start();
  auto free_run = inf::generate(*engine, start, prompt, options);
  ASSERT_TRUE(free_run);
  ASSERT_EQ(free_run->finish, inf::FinishReason::Length);
  // Where each generated token's bytes end in the text.
  std::vector<std::size_t> ends;
  std::string text;
  for (std::int32_t t : free_run->tokens)
    ends.push_back((text += (*tokenizer)->decode({&t, 1})).size());
  ASSERT_EQ(text, free_run->text);
  // A stop string from the last byte of one token into the next two bytes, at its first place.
  std::size_t checked = 0;
  for (std::size_t i = 10; i + 2 < ends.size() && checked < 3; ++i) {
    if (ends[i] == 0 || ends[i + 1] - ends[i] < 1) continue;
    const std::size_t at = ends[i] - 1;
    const std::string stop = text.substr(at, std::min<std::size_t>(3, ends[i + 2] - at));
    if (stop.size() < 2 || text.find(stop) != at) continue;
    options.stop = {"never-in-this-text", stop};
    auto sequence = engine->start();
    auto stopped = inf::generate(*engine, sequence, prompt, options);
    ASSERT_TRUE(stopped);
    EXPECT_EQ(stopped->finish, inf::FinishReason::Stop);
    EXPECT_EQ(stopped->text, text.substr(0, at)) << "stop at byte " << at;
    // It ended with the token whose bytes complete the stop string.
    const std::size_t last =
        std::lower_bound(ends.begin(), ends.end(), at + stop.size()) - ends.begin();
    EXPECT_EQ(stopped->tokens.size(), last + 1) << "stop at byte " << at;
    ++checked;
  }
  EXPECT_GT(checked, 0u) << "no token boundary to put a stop string across";
}

// One engine, two threads feeding it at once, each its own sequence (an evaluation's trials
// sharing an embedded model): each gets the logits it gets alone.
TEST_F(Engine, TwoThreadsFeedOneEngineAtOnce) {
  for (unsigned threads : {1u, 2u}) {
    auto engine = inf::Engine::open(dir.string(), {.threads = threads});
    ASSERT_TRUE(engine);
    const auto a = random_tokens(140, 13), b = random_tokens(140, 14);
    auto alone = [&](const std::vector<std::int32_t>& tokens) {
      auto sequence = engine->start();
      std::vector<std::vector<float>> out;
      for (std::int32_t t : tokens) out.push_back(*engine->feed(sequence, {&t, 1}));
      return out;
    };
    const auto want_a = alone(a), want_b = alone(b);
    std::vector<std::vector<float>> got_a, got_b;
    std::thread first([&] { got_a = alone(a); });
    got_b = alone(b);
    first.join();
    EXPECT_EQ(got_a, want_a) << threads << " threads";
    EXPECT_EQ(got_b, want_b) << threads << " threads";
  }
}

TEST_F(Engine, TokenIdsOutsideTheVocabularyAreRefused) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  auto sequence = engine->start();
  const std::int32_t bad[] = {5, 2048};
  auto logits = engine->feed(sequence, bad);
  ASSERT_FALSE(logits);
  EXPECT_EQ(logits.error().message, "token id 2048 is outside the vocabulary (0 to 2047)");
  EXPECT_EQ(sequence.length(), 0);
}

// A Batcher gathers the requests submitted together into the same decode steps, and each gets
// exactly what generate() gives it alone: greedy, sampled with top-p or top-k, cut by a stop
// string, none at all (max_tokens 0), and one refused (a token outside the vocabulary) without
// harm to the others. A request of n tokens is fed its first n - 1 in steps: the steps taken
// and their tokens follow from the lengths alone.
TEST_F(Engine, ABatcherStepsRequestsTogetherAndGivesEachWhatItGetsAlone) {
  auto engine = inf::Engine::open(dir.string(), {.threads = 2});
  ASSERT_TRUE(engine);
  auto shared = std::make_shared<const inf::Engine>(std::move(*engine));
  std::vector<inf::Batcher::Request> requests(5);
  requests[0] = {random_tokens(20, 21), {.max_tokens = 12}, {}};
  requests[1] = {random_tokens(140, 22),
                 {.max_tokens = 20, .sampling = {.temperature = 0.8, .top_p = 0.9, .seed = 5}},
                 {}};
  requests[2] = {random_tokens(7, 23),
                 {.max_tokens = 16, .sampling = {.temperature = 1.0, .top_k = 50, .seed = 9}},
                 {}};
  requests[3] = {random_tokens(5, 24), {.max_tokens = 0}, {}};
  requests[4] = {{3, 2048}, {.max_tokens = 4}, {}};
  // Request 2 stops at a string its free run holds, from the middle on.
  auto alone = [&](const inf::Batcher::Request& r) {
    auto sequence = shared->start();
    return inf::generate(*shared, sequence, r.prompt, r.options);
  };
  const auto free_run = alone(requests[2]);
  ASSERT_TRUE(free_run);
  for (std::size_t at = free_run->text.size() / 2; at + 2 < free_run->text.size(); ++at)
    if (free_run->text.find(free_run->text.substr(at, 2)) == at) {
      requests[2].options.stop = {free_run->text.substr(at, 2)};
      break;
    }
  ASSERT_FALSE(requests[2].options.stop.empty());
  std::vector<inf::Result<inf::Generated>> want;
  for (const auto& r : requests) want.push_back(alone(r));
  ASSERT_FALSE(want[4]);
  EXPECT_EQ(want[2]->finish, inf::FinishReason::Stop);

  inf::Batcher batcher(shared);
  auto futures = batcher.submit(requests);
  std::int64_t steps = 0, step_tokens = 0, largest = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto got = futures[i].get();
    if (!want[i]) {
      ASSERT_FALSE(got);
      EXPECT_EQ(got.error().message, want[i].error().message);
      continue;
    }
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(got->tokens, want[i]->tokens) << "request " << i;
    EXPECT_EQ(got->logprobs, want[i]->logprobs) << "request " << i;
    EXPECT_EQ(got->text, want[i]->text) << "request " << i;
    EXPECT_EQ(got->finish, want[i]->finish) << "request " << i;
    const auto fed = static_cast<std::int64_t>(want[i]->tokens.size()) - 1;
    steps = std::max(steps, fed);
    step_tokens += std::max<std::int64_t>(fed, 0);
    largest += fed > 0;
  }
  EXPECT_EQ(largest, 3);
  const auto stats = batcher.stats();
  EXPECT_EQ(stats.requests, 5);
  EXPECT_EQ(stats.steps, steps);
  EXPECT_EQ(stats.step_tokens, step_tokens);
  EXPECT_EQ(stats.largest_step, largest);

  // Two threads waiting on it at once: each its own generation.
  inf::Result<inf::Generated> first = tl::unexpected(inf::Error{"not run"});
  std::thread other([&] { first = batcher.generate(requests[0].prompt, requests[0].options); });
  auto second = batcher.generate(requests[1].prompt, requests[1].options);
  other.join();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->tokens, want[0]->tokens);
  EXPECT_EQ(second->tokens, want[1]->tokens);
}

// A long prompt goes in pieces between steps, all new prompts sharing 256 tokens a round: a
// request in flight goes on decoding while a new one's 500-token prompt is fed (236 tokens beside
// the 20-token prompt, then 256, then 8: three rounds, where 256 a request would take two), and
// both get what they get alone.
TEST_F(Engine, ABatcherFeedsALongPromptBetweenSteps) {
  auto engine = inf::Engine::open(dir.string(), {.threads = 2});
  ASSERT_TRUE(engine);
  auto shared = std::make_shared<const inf::Engine>(std::move(*engine));
  std::vector<std::pair<char, std::size_t>> chosen;  // request, tokens it had chosen
  std::size_t short_count = 0, long_count = 0;
  std::vector<inf::Batcher::Request> requests(2);
  requests[0] = {random_tokens(20, 31), {.max_tokens = 12}, [&](std::int32_t) {
                   chosen.emplace_back('s', ++short_count);
                 }};
  requests[1] = {random_tokens(500, 32), {.max_tokens = 3}, [&](std::int32_t) {
                   chosen.emplace_back('l', ++long_count);
                 }};
  std::vector<inf::Generated> want;
  for (const auto& r : requests) {
    auto sequence = shared->start();
    want.push_back(*inf::generate(*shared, sequence, r.prompt, r.options));
  }
  ASSERT_GE(want[0].tokens.size(), 4u) << "the short request must outlast the long prompt";
  chosen.clear();
  short_count = long_count = 0;
  inf::Batcher batcher(shared);
  auto futures = batcher.submit(requests);
  for (std::size_t i = 0; i < 2; ++i) {
    auto got = futures[i].get();
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(got->tokens, want[i].tokens) << "request " << i;
    EXPECT_EQ(got->logprobs, want[i].logprobs) << "request " << i;
  }
  // The short request chose its first token at admission and one more at each of the two steps
  // taken while the long prompt was fed: three before the long request's first.
  const auto first_long =
      std::find(chosen.begin(), chosen.end(), std::pair<char, std::size_t>{'l', 1});
  ASSERT_NE(first_long, chosen.end());
  EXPECT_EQ(std::count_if(chosen.begin(), first_long, [](auto& c) { return c.first == 's'; }), 3);
}

// What a request's own callback throws ends that request, through its future, and no other; an
// empty prompt is refused; a Batcher going away first finishes the requests it holds.
TEST_F(Engine, ABatcherKeepsEachRequestsFailureItsOwn) {
  auto engine = inf::Engine::open(dir.string());
  ASSERT_TRUE(engine);
  auto shared = std::make_shared<const inf::Engine>(std::move(*engine));
  std::vector<inf::Batcher::Request> requests(3);
  requests[0] = {random_tokens(10, 41), {.max_tokens = 8}, {}};
  requests[1] = {random_tokens(10, 42), {.max_tokens = 8}, [](std::int32_t) {
                   throw std::runtime_error("a callback failed");
                 }};
  requests[2] = {{}, {.max_tokens = 8}, {}};
  std::vector<std::future<inf::Result<inf::Generated>>> futures;
  {
    inf::Batcher batcher(shared);
    futures = batcher.submit(requests);
  }  // the requests are finished before the Batcher goes
  auto sequence = shared->start();
  const auto want = inf::generate(*shared, sequence, requests[0].prompt, requests[0].options);
  auto first = futures[0].get();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->tokens, want->tokens);
  EXPECT_THROW(futures[1].get(), std::runtime_error);
  auto empty = futures[2].get();
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "the prompt has no tokens");
  auto alone = shared->start();
  auto refused = inf::generate(*shared, alone, {}, requests[2].options);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "the prompt has no tokens");
}
