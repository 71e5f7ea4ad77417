// Properties over random conversations: the parse of an encoded assistant turn gives the turn
// back, and streaming with random cut points equals the whole-text parse.
#include <gtest/gtest.h>

#include <random>

#include "python_json.hpp"
#include "test_util.hpp"

namespace warren::toolcall {
namespace {

// Pieces random text is made of: markup-like characters, escapes, multi-byte UTF-8. Without the
// letters of "DSML" or "think", no special token can form by chance.
const std::vector<std::string> kPieces = {
    "a", "b",    " ",  "\n", "\n\n", "<",    ">", "/",   "\"", "\\",      "{", "}", "中",
    "é", "🙂", "｜", "|",  "\t",   "\x01", "=", "<b>", "</", "x=\"y\"", "0", "1"};

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_(seed) {}

  std::size_t below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

  std::string text(std::size_t max_pieces) {
    std::string s;
    for (std::size_t i = below(max_pieces + 1); i > 0; --i) s += kPieces[below(kPieces.size())];
    return s;
  }

  Json value(int depth) {
    switch (below(depth > 2 ? 6 : 8)) {
      case 0:
        return text(6);
      case 1:
        return static_cast<std::int64_t>(below(2000000)) - 1000000;
      case 2:
        return std::uniform_real_distribution<double>(-1e6, 1e6)(rng_) / std::pow(10.0, below(12));
      case 3:
        return below(2) == 0;
      case 4:
        return nullptr;
      case 5:
        return text(3);
      case 6: {
        Json a = Json::array();
        for (std::size_t i = below(4); i > 0; --i) a.push_back(value(depth + 1));
        return a;
      }
      default: {
        Json o = Json::object();
        for (std::size_t i = below(4); i > 0; --i) o[key("k", below(9))] = value(depth + 1);
        return o;
      }
    }
  }

  Message assistant_turn() {
    Message m;
    m.role = Role::Assistant;
    m.reasoning_content = text(12);
    m.content = text(12);
    for (std::size_t c = below(4); c > 0; --c) {
      Json args = Json::object();
      for (std::size_t p = below(4); p > 0; --p) args[key("p", below(6))] = value(0);
      m.tool_calls.push_back({"", key("tool_", below(3)), detail::python_json(args)});
    }
    return m;
  }

 private:
  static std::string key(const char* prefix, std::size_t n) {
    std::string k = prefix;
    k += std::to_string(n);
    return k;
  }
  std::mt19937_64 rng_;
};

// The completion the model would have written for `turn`: the encoded turn after the prompt.
std::string completion_for(const Message& turn, Mode mode) {
  ChatRequest request;
  request.messages.push_back(Message{Role::User, "go"});
  request.messages.push_back(turn);
  EncodeOptions o;
  o.mode = mode;
  o.drop_thinking = false;
  const std::string prompt = *make_codec(Format::V4)->encode(request, o);
  const std::string open =
      mode == Mode::Thinking ? "<｜Assistant｜><think>" : "<｜Assistant｜></think>";
  return prompt.substr(prompt.find(open) + open.size());
}

TEST(Property, ParseOfEncodedTurnGivesTheTurnBack) {
  for (std::uint64_t seed = 1; seed <= 500; ++seed) {
    Generator g(seed);
    const Mode mode = seed % 3 == 0 ? Mode::Chat : Mode::Thinking;
    const Message turn = g.assistant_turn();
    const std::string completion = completion_for(turn, mode);
    auto parsed = testing::parse(completion, testing::options(mode));
    ASSERT_TRUE(parsed.has_value()) << "seed " << seed << ": " << parsed.error().message << "\n"
                                    << completion;
    EXPECT_EQ(parsed->content, turn.content) << "seed " << seed;
    EXPECT_EQ(parsed->reasoning_content, mode == Mode::Thinking ? *turn.reasoning_content : "")
        << "seed " << seed;
    ASSERT_EQ(parsed->tool_calls.size(), turn.tool_calls.size()) << "seed " << seed;
    for (std::size_t i = 0; i < turn.tool_calls.size(); ++i) {
      EXPECT_EQ(parsed->tool_calls[i].name, turn.tool_calls[i].name);
      EXPECT_EQ(parsed->tool_calls[i].arguments, turn.tool_calls[i].arguments) << "seed " << seed;
      EXPECT_TRUE(parsed->tool_calls[i].errors.empty());
    }
    EXPECT_TRUE(parsed->warnings.empty());
    // Lenient mode reads well-formed input exactly as strict mode does.
    EXPECT_EQ(to_json(testing::must_parse(completion, testing::options(mode, true))),
              to_json(*parsed));
  }
}

TEST(Property, RandomCutPointsEqualTheWholeTextParse) {
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    Generator g(seed * 7919);
    const Mode mode = seed % 2 ? Mode::Thinking : Mode::Chat;
    std::string completion = completion_for(g.assistant_turn(), mode);
    if (seed % 5 == 0)
      completion.insert(g.below(completion.size() + 1), g.text(3));  // maybe broken
    for (bool lenient : {false, true}) {
      MessageBuilder whole;
      auto a = make_codec(Format::V4)->make_parser(testing::options(mode, lenient), whole);
      a->feed(completion);
      a->finish();
      MessageBuilder cut;
      auto b = make_codec(Format::V4)->make_parser(testing::options(mode, lenient), cut);
      for (std::size_t at = 0; at < completion.size();) {
        const std::size_t n = 1 + g.below(12);
        b->feed(std::string_view(completion).substr(at, n));
        at += n;
      }
      b->finish();
      ASSERT_EQ(whole.error().has_value(), cut.error().has_value()) << "seed " << seed;
      if (whole.error()) {
        EXPECT_EQ(whole.error()->message, cut.error()->message) << "seed " << seed;
      } else {
        EXPECT_EQ(to_json(whole.message()), to_json(cut.message())) << "seed " << seed;
      }
    }
  }
}

}  // namespace
}  // namespace warren::toolcall
