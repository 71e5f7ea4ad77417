// The tokenizer against Hugging Face's: the tokenizer.json `warren model init` writes (DeepSeek's
// pre-tokenizer, byte-level BPE, special tokens) encodes every text here to the same ids as the
// Rust `tokenizers` library and its JavaScript port (tests/node, installed by scripts/setup.sh),
// and decodes back to the same bytes. Then the parts: the byte-level alphabet, the merge order,
// and tokenizer.json files refused by what they hold.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../cli/cli_util.hpp"
#include "byte_level.hpp"
#include "pre_tokenizer.hpp"
#include "warren/inference/model.hpp"

namespace inf = warren::inference;
namespace fs = std::filesystem;
using warren::testing::slurp;

namespace {

// Texts that exercise each branch of DeepSeek's splits and of the merges.
std::vector<std::string> texts() {
  std::vector<std::string> t = {
      "Hello world 12345 你好世界!!\n\nfoo<｜User｜>bar",
      "",
      " ",
      "  x",
      "\n",
      "\r\n\r\n",
      "\t\tindent\n\t\t\tdeeper",
      "a  b   c    d",
      "trailing   ",
      "   leading",
      "1234567890 3.14159 year 2026-12-06 １２３ Ⅻ ½",
      "Hello!!! What??? ...\n",
      "foo.bar(baz) x=>{y} 'quoted' \"double\" it's we're",
      "#include <vector>\nint main() { return 0; }\n",
      "これはテストです。東京タワー ｶﾀｶﾅ",
      "中文，标点。mixed中English混合",
      "한국어 텍스트 Ελληνικά русский текст",
      "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
      "combining e\u0301 and \u00e9, nbsp\u00a0here, zero\u200bwidth",
      "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>done<｜end▁of▁sentence｜>",
      "<｜DSML｜invoke name=\"bash\">\n<｜DSML｜parameter name=\"command\" string=\"true\">ls",
      "<｜Use <think><think> ｜DSML｜｜DSML｜",
      "def f(x):\n    if x:\n        return [i * 2 for i in range(x)]\n    return None\n\n\n",
      "{\"a\": [1, 2, 3], \"b\": {\"c\": null}}\n",
      "$ cd /tmp && ls -la | grep -v '^d' > out.txt 2>&1\n",
      "a\u3000b\u2003c\u2028d\u0085e",
  };
  for (int n = 1; n <= 4; ++n)
    t.push_back(slurp(fs::path(WARREN_SOURCE_DIR) / "tests/toolcall/data" /
                      ("test_output_" + std::to_string(n) + ".txt")));
  t.push_back(slurp(fs::path(WARREN_SOURCE_DIR) / "docs/v4-architecture.md"));
  return t;
}

class Tokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("warren-tokenizer-" + std::to_string(getpid()));
    fs::remove_all(root);
    auto written =
        inf::write_random_checkpoint(inf::preset_config(inf::Preset::Tiny), root.string(), 11);
    ASSERT_TRUE(written) << written.error().message;
  }
  void TearDown() override { fs::remove_all(root); }
  fs::path root;
};

}  // namespace

TEST_F(Tokenizer, EncodesAsHuggingFacesTokenizersDo) {
  const fs::path node_dir = fs::path(WARREN_SOURCE_DIR) / "tests/node";
  ASSERT_TRUE(fs::exists(node_dir / "node_modules/tokenizers"))
      << "the npm packages this test compares against are missing: run scripts/setup.sh";
  auto tokenizer = inf::Tokenizer::load((root / "tokenizer.json").string());
  ASSERT_TRUE(tokenizer) << tokenizer.error().message;
  const auto all = texts();
  std::ofstream(root / "texts.json") << nlohmann::json(all).dump();
  const std::string command = "cd " + node_dir.string() + " && node hf_encode.mjs " +
                              (root / "tokenizer.json").string() + " " +
                              (root / "texts.json").string() + " > " + (root / "hf.json").string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const auto hf = nlohmann::json::parse(slurp(root / "hf.json"));
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto ids = tokenizer->encode(all[i]);
    EXPECT_EQ(ids, hf["rust"][i].get<std::vector<std::int32_t>>())
        << "text " << i << ": " << all[i];
    EXPECT_EQ(ids, hf["js"][i].get<std::vector<std::int32_t>>()) << "text " << i << ": " << all[i];
    EXPECT_EQ(tokenizer->decode(ids), all[i]) << "text " << i;
    tokens += ids.size();
  }
  // Merges were learned: indentation and the words of code the corpus has are single tokens.
  std::size_t bytes = 0;
  for (const auto& text : all) bytes += text.size();
  EXPECT_LT(tokens, bytes * 7 / 10) << tokens << " tokens for " << bytes << " bytes";
  EXPECT_EQ(tokenizer->encode("        return").size(), 2u);
}

TEST_F(Tokenizer, SpecialTokensAreWholeAndFirst) {
  auto tokenizer = inf::Tokenizer::load((root / "tokenizer.json").string());
  ASSERT_TRUE(tokenizer);
  EXPECT_EQ(tokenizer->id_of("<｜begin▁of▁sentence｜>"), 0);
  EXPECT_EQ(tokenizer->id_of("<｜end▁of▁sentence｜>"), 1);
  EXPECT_EQ(tokenizer->encode("<｜User｜>hi<｜Assistant｜>").front(),
            *tokenizer->id_of("<｜User｜>"));
  EXPECT_EQ(tokenizer->size(), 2048);  // tiny's vocab_size: the merges filled it
  EXPECT_EQ(tokenizer->decode(std::vector<std::int32_t>{0, 1}),
            "<｜begin▁of▁sentence｜><｜end▁of▁sentence｜>");
}

TEST(ByteLevel, EveryByteHasOnePrintableCharacter) {
  const auto& chars = inf::byte_level::byte_chars();
  EXPECT_EQ(chars[' '], "Ġ");
  EXPECT_EQ(chars['\n'], "Ċ");
  EXPECT_EQ(chars['a'], "a");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  EXPECT_EQ(inf::byte_level::to_bytes(inf::byte_level::to_text(all)), all);
  EXPECT_FALSE(inf::byte_level::to_bytes("｜"));
}

namespace {

// A tokenizer.json with the bytes, the given merges and no pre-tokenizer.
std::string with_merges(const std::vector<std::string>& merges,
                        const std::vector<std::string>& extra_tokens) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b)
    vocab[inf::byte_level::to_text(std::string(1, static_cast<char>(b)))] = id++;
  for (const auto& t : extra_tokens) vocab[t] = id++;
  return nlohmann::json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}}.dump();
}

}  // namespace

TEST(TokenizerMerges, LowestRankFirstAndTheLeftmostOfEqualRanks) {
  // "aaa" with the one merge "a a": the leftmost pair merges, leaving "aa" "a".
  auto t = inf::Tokenizer::parse(with_merges({"a a"}, {"aa"}));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->encode("aaa"), (std::vector<std::int32_t>{256, 'a'}));
  EXPECT_EQ(t->encode("aaaa"), (std::vector<std::int32_t>{256, 256}));
  // "abc": "b c" ranks before "a b", so "a" "bc" although "a b" is leftmost.
  auto u = inf::Tokenizer::parse(with_merges({"b c", "a b", "a bc"}, {"bc", "ab", "abc"}));
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->encode("abc"), (std::vector<std::int32_t>{258}));
  EXPECT_EQ(u->encode("abx"), (std::vector<std::int32_t>{257, 'x'}));
}

TEST(TokenizerMerges, UnsupportedOrBrokenFilesAreRefusedByName) {
  const std::pair<std::string, std::string> cases[] = {
      {"[]", "tokenizer.json: not a JSON object"},
      {R"({"model": {"type": "Unigram"}})", "tokenizer.json: model: type must be BPE"},
      {R"({"normalizer": {"type": "NFC"}, "model": {"type": "BPE"}})",
       "tokenizer.json: normalizer: NFC is not supported"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}}})",
       "tokenizer.json: model.vocab: no token for byte 0 (every byte needs one)"},
  };
  for (const auto& [text, expected] : cases) {
    auto t = inf::Tokenizer::parse(text);
    ASSERT_FALSE(t) << text;
    EXPECT_EQ(t.error().message, expected);
  }
  auto missing = inf::Tokenizer::parse(with_merges({"a q"}, {}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "tokenizer.json: model.merges: a q: a part or the result is not in vocab");
  auto split = nlohmann::json::parse(with_merges({}, {}));
  split["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Contiguous"}};
  auto behavior = inf::Tokenizer::parse(split.dump());
  ASSERT_FALSE(behavior);
  EXPECT_EQ(behavior.error().message,
            "tokenizer.json: Split: behavior Contiguous is not supported (Isolated, Removed)");
}

namespace {

std::vector<std::string> pieces(const inf::PreTokenizer& pre, std::string_view text) {
  std::vector<std::string> out;
  pre.split(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

}  // namespace

TEST(PreTokenizer, TheHandWrittenSplitOfDeepSeeksPatternsIsPcre2s) {
  auto fast = inf::PreTokenizer::make(inf::PreTokenizer::deepseek());
  auto pcre2 = inf::PreTokenizer::make(inf::PreTokenizer::deepseek(), /*pcre2_only=*/true);
  ASSERT_TRUE(fast && pcre2);
  // Random strings over an alphabet with a character of every class the patterns name, line
  // breaks, Unicode spaces, marks, digits of other scripts, CJK and kana, and invalid UTF-8
  // (a lone continuation byte, a truncated sequence, an overlong, a surrogate).
  const std::vector<std::string> alphabet = {
      "a",  "Z",    "é",  "ж",      "中",       "か",       "カ",           "한",
      "1",  "٣",    "Ⅻ",  "½",      " ",        "  ",       "\t",           "\n",
      "\r", "\r\n", "\v", "\u00a0", "\u3000",   "\u2028",   "\u0085",       "!",
      ".",  "'",    "$",  "+",      "€",        "，",       "。",           "\u0301",
      "😀",  "_",    "-",  "\x80",   "\xE4\xB8", "\xC0\xAF", "\xED\xA0\x80", "\xFF"};
  std::uint64_t state = 12345;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    for (int n = static_cast<int>(next() >> 60); n >= 0; --n)
      text += alphabet[(next() >> 33) % alphabet.size()];
    ASSERT_EQ(pieces(*fast, text), pieces(*pcre2, text)) << "round " << round;
  }
  const std::string docs = slurp(fs::path(WARREN_SOURCE_DIR) / "docs/v4-architecture.md");
  EXPECT_EQ(pieces(*fast, docs), pieces(*pcre2, docs));
  EXPECT_EQ(pieces(*fast, "Hello  world\n\n 123456 你好!!\n"),
            (std::vector<std::string>{"Hello", " ", " world", "\n\n", " ", "123", "456", " ",
                                      "你好", "!!\n"}));
}
