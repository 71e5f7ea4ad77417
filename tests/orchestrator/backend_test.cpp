// The hosted-API backends against a fake DeepSeek API on 127.0.0.1 (fake_api.hpp), and the retry
// policy around them.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "fake_api.hpp"
#include "http_client.hpp"
#include "model_calls.hpp"
#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {
namespace {

using testing::FakeApi;

// Runs one coroutine on `io` to its end.
template <class T>
T run_on(boost::asio::io_context& io, boost::asio::awaitable<T> task) {
  std::optional<T> result;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    result = std::move(value);
  });
  io.run();
  io.restart();
  return std::move(*result);
}

ModelRequest request_with_history() {
  ModelRequest r;
  r.tools = {Json::parse(R"({"name": "bash", "description": "run",
      "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                     "required": ["command"]}})")};
  toolcall::Message system{.role = toolcall::Role::System, .content = "be brief"};
  toolcall::Message user{.role = toolcall::Role::User, .content = "list the files"};
  // An earlier tool-calling turn without reasoning: the backend must still send it back ("").
  toolcall::Message assistant{.role = toolcall::Role::Assistant, .content = ""};
  assistant.tool_calls.push_back({"call_a", "bash", R"({"command":"ls"})"});
  toolcall::Message result{
      .role = toolcall::Role::Tool, .content = "a.txt\n", .tool_call_id = "call_a"};
  r.messages = {system, user, assistant, result};
  return r;
}

class Backends : public ::testing::Test {
 protected:
  std::unique_ptr<ModelBackend> backend(const std::string& kind, double idle_timeout_s = 5) {
    ModelConfig config{.name = "deepseek-v4-flash",
                       .backend = *backend_kind(kind),
                       .base_url = api.base_url(),
                       .model = "deepseek-v4-flash",
                       .api_key_env = ""};
    config.idle_timeout_s = idle_timeout_s;
    auto made = make_backend(config, io.get_executor());
    EXPECT_TRUE(made) << made.error().message;
    return std::move(*made);
  }
  ModelResult ask(ModelBackend& b, ModelRequest r = request_with_history()) {
    return run_on(io, b.complete(std::move(r)));
  }

  boost::asio::io_context io;
  FakeApi api;
};

FakeApi::Answer tool_answer() {
  FakeApi::Answer a;
  a.reasoning = "The user wants ünïcode-safe output; I will look at the files.";
  a.content = "Looking.";
  a.calls = {{"bash", R"({"command": "ls -la \"dir\""})"}, {"bash", R"({"command": "pwd"})"}};
  return a;
}

TEST_F(Backends, OpenAiStreamsReasoningContentAndToolCallsCutAnywhere) {
  for (std::size_t chunk : {1u, 3u, 7u, 64u}) {
    api.chunk_bytes = chunk;
    api.plan(tool_answer());
    auto b = backend("openai");
    auto reply = ask(*b);
    ASSERT_TRUE(reply) << "chunk " << chunk << ": " << reply.error().message;
    EXPECT_EQ(reply->reasoning_content, tool_answer().reasoning);
    EXPECT_EQ(reply->content, "Looking.");
    ASSERT_EQ(reply->tool_calls.size(), 2u);
    EXPECT_EQ(reply->tool_calls[0].id, "call_0");
    EXPECT_EQ(reply->tool_calls[0].name, "bash");
    EXPECT_EQ(reply->tool_calls[0].arguments, R"({"command": "ls -la \"dir\""})");
    EXPECT_TRUE(reply->tool_calls[0].errors.empty());
    EXPECT_EQ(reply->finish_reason, "tool_calls");
    EXPECT_EQ(reply->usage.prompt_tokens, 1200);
    EXPECT_EQ(reply->usage.cached_tokens, 1024);
    EXPECT_EQ(reply->usage.completion_tokens, 80);
  }
  // What went out: DeepSeek's request shape, with the earlier turn's reasoning sent back.
  const Json sent = api.requests().back();
  EXPECT_EQ(api.paths().back(), "/chat/completions");
  EXPECT_EQ(sent["stream"], true);
  EXPECT_EQ(sent["thinking"]["type"], "enabled");
  EXPECT_EQ(sent["reasoning_effort"], "high");
  EXPECT_EQ(sent["tools"][0]["type"], "function");
  EXPECT_EQ(sent["messages"][2]["reasoning_content"], "");
  EXPECT_EQ(sent["messages"][2]["tool_calls"][0]["function"]["arguments"], R"({"command":"ls"})");
  EXPECT_EQ(sent["messages"][3]["role"], "tool");
  EXPECT_EQ(sent["messages"][3]["tool_call_id"], "call_a");
}

TEST_F(Backends, TheFakeRefusesHistoryWithoutReasoningLikeTheRealApi) {
  // The check the backend passes above can fail: a request that drops reasoning_content gets
  // DeepSeek's 400, classified as a bad request with the server's message, not retried.
  api.plan(tool_answer());
  detail::HttpClient client(io.get_executor());
  Json body = {{"model", "m"},
               {"messages",
                {{{"role", "assistant"},
                  {"content", ""},
                  {"tool_calls",
                   {{{"id", "x"},
                     {"type", "function"},
                     {"function", {{"name", "bash"}, {"arguments", "{}"}}}}}}}}}};
  auto endpoint = *detail::parse_base_url(api.base_url());
  detail::HttpPost post{endpoint, "/chat/completions", {}, body.dump(), {}};
  const std::function<bool(std::string_view)> ignore = [](std::string_view) { return true; };
  auto sent = run_on(io, client.post_streaming(post, ignore));
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().kind, FailureKind::BadRequest);
  EXPECT_EQ(sent.error().http_status, 400);
  EXPECT_EQ(sent.error().message,
            "The reasoning_content in the thinking mode must be passed back to the API.");
  EXPECT_FALSE(sent.error().retryable());
}

TEST_F(Backends, FailuresAreClassified) {
  auto b = backend("openai", 0.5);
  api.plan({}, FakeApi::Fault::RateLimited);
  auto limited = ask(*b);
  ASSERT_FALSE(limited);
  EXPECT_EQ(limited.error().kind, FailureKind::RateLimited);
  EXPECT_EQ(limited.error().retry_after, std::chrono::milliseconds(200));

  api.plan({}, FakeApi::Fault::ServerError);
  auto server = ask(*b);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.error().kind, FailureKind::Server);
  EXPECT_EQ(server.error().http_status, 500);

  api.plan({}, FakeApi::Fault::Unauthorized);
  auto auth = ask(*b);
  ASSERT_FALSE(auth);
  EXPECT_EQ(auth.error().kind, FailureKind::Auth);
  EXPECT_NE(auth.error().message.find("api key is invalid"), std::string::npos);

  api.plan(tool_answer(), FakeApi::Fault::CutMidway);
  auto cut = ask(*b);
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().kind, FailureKind::Dropped);
  EXPECT_TRUE(cut.error().retryable());

  api.stall = std::chrono::milliseconds(1500);  // past the 0.5 s idle timeout
  api.plan(tool_answer(), FakeApi::Fault::Stall);
  auto stalled = ask(*b);
  ASSERT_FALSE(stalled);
  EXPECT_EQ(stalled.error().kind, FailureKind::Timeout);
}

TEST_F(Backends, ASlowStreamThatKeepsSendingSucceeds) {
  api.chunk_bytes = 200;
  api.slow_gap = std::chrono::milliseconds(100);  // 100 ms between pieces, under the 0.5 s idle
  auto b = backend("openai", 0.5);
  api.plan(tool_answer(), FakeApi::Fault::Slow);
  auto reply = ask(*b);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->tool_calls.size(), 2u);
}

TEST_F(Backends, NothingListeningIsANetworkFailure) {
  ModelConfig config{
      .name = "x", .backend = BackendKind::OpenAi, .base_url = "http://127.0.0.1:1", .model = "x"};
  auto b = make_backend(config, io.get_executor());
  ASSERT_TRUE(b);
  auto reply = run_on(io, (*b)->complete(request_with_history()));
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().kind, FailureKind::Network);
  EXPECT_NE(reply.error().message.find("cannot connect to 127.0.0.1:1"), std::string::npos);
}

// HTTPS: the certificate and the host name are verified; a private CA is trusted only when named.
TEST(Tls, TheServerIsVerifiedAgainstTheTrustedCas) {
  const std::string dir = ::testing::TempDir() + "/warren-tls-" + std::to_string(getpid());
  const std::string make_cert =
      "mkdir -p " + dir +
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null";
  ASSERT_EQ(std::system(make_cert.c_str()), 0);
  FakeApi api(dir + "/cert.pem", dir + "/key.pem");
  boost::asio::io_context io;
  ModelConfig config{
      .name = "private", .backend = BackendKind::OpenAi, .base_url = api.base_url(), .model = "m"};

  config.ca_file = dir + "/cert.pem";
  api.plan(tool_answer());
  auto trusted = make_backend(config, io.get_executor());
  ASSERT_TRUE(trusted) << trusted.error().message;
  auto reply = run_on(io, (*trusted)->complete(request_with_history()));
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->tool_calls.size(), 2u);

  config.ca_file = "";  // the system's CAs do not know this certificate
  auto untrusted = make_backend(config, io.get_executor());
  ASSERT_TRUE(untrusted);
  auto refused = run_on(io, (*untrusted)->complete(request_with_history()));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, FailureKind::Network);
  EXPECT_NE(refused.error().message.find("certificate verify failed"), std::string::npos)
      << refused.error().message;

  config.ca_file = dir + "/missing.pem";
  auto missing = make_backend(config, io.get_executor());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "model private: cannot read ca_file " + dir + "/missing.pem");
  std::system(("rm -rf " + dir).c_str());
}

TEST_F(Backends, AMissingKeyIsOneClearError) {
  ModelConfig config{.name = "deepseek-v4-pro",
                     .backend = BackendKind::OpenAi,
                     .base_url = "https://api.deepseek.com",
                     .model = "deepseek-v4-pro",
                     .api_key_env = "WARREN_TEST_NO_SUCH_KEY"};
  auto b = make_backend(config, io.get_executor());
  ASSERT_FALSE(b);
  EXPECT_EQ(
      b.error().message,
      "the API key for deepseek-v4-pro is missing: set WARREN_TEST_NO_SUCH_KEY (or name another "
      "variable with --api-key-env)");
}

TEST_F(Backends, RetriesBackOffHonourRetryAfterAndRecordEveryAttempt) {
  auto b = backend("openai");
  api.plan({}, FakeApi::Fault::RateLimited);
  api.plan({}, FakeApi::Fault::ServerError);
  api.plan(tool_answer());
  auto config = Config::load();
  ASSERT_TRUE(config);
  detail::Pricing pricing(*config, *b, nullptr);
  RetryPolicy policy{.max_attempts = 5, .base_delay = std::chrono::milliseconds(10)};
  std::vector<storage::ModelCall> calls;
  bool out_of_time = false;
  const auto start = std::chrono::steady_clock::now();
  auto reply = run_on(io, detail::call_model(*b, request_with_history(), policy, pricing, calls,
                                             nullptr, Deadline::max(), out_of_time));
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(reply) << reply.error().message;
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_NE(calls[0].error.find("HTTP 429"), std::string::npos);
  EXPECT_NE(calls[1].error.find("HTTP 500"), std::string::npos);
  EXPECT_EQ(calls[2].error, "");
  EXPECT_EQ(calls[2].attempt, 2);
  EXPECT_GE(waited, std::chrono::milliseconds(200));  // Retry-After: 0.2 was honoured
  // deepseek-v4-flash: 176 uncached at 0.14, 1024 cached at 0.028, 80 out at 0.28 (per 1M).
  EXPECT_NEAR(calls[2].cost_usd, (176 * 0.14 + 1024 * 0.028 + 80 * 0.28) / 1e6, 1e-12);
}

TEST_F(Backends, RetriesStopAtOnceOnAuthAndSoonOnARepeatedFailure) {
  auto b = backend("openai");
  auto config = Config::load();
  detail::Pricing pricing(*config, *b, nullptr);
  RetryPolicy policy{
      .max_attempts = 6, .base_delay = std::chrono::milliseconds(1), .same_failure_limit = 3};
  std::vector<storage::ModelCall> calls;
  bool out_of_time = false;
  api.plan({}, FakeApi::Fault::Unauthorized);
  auto auth = run_on(io, detail::call_model(*b, request_with_history(), policy, pricing, calls,
                                            nullptr, Deadline::max(), out_of_time));
  ASSERT_FALSE(auth);
  EXPECT_EQ(calls.size(), 1u);

  calls.clear();
  for (int i = 0; i < 6; ++i) api.plan({}, FakeApi::Fault::ServerError);
  auto server = run_on(io, detail::call_model(*b, request_with_history(), policy, pricing, calls,
                                              nullptr, Deadline::max(), out_of_time));
  ASSERT_FALSE(server);
  EXPECT_EQ(calls.size(), 3u);  // the same 500 three times in a row
}

TEST_F(Backends, NoRetryWaitsPastTheTrialsDeadline) {
  auto b = backend("openai");
  auto config = Config::load();
  detail::Pricing pricing(*config, *b, nullptr);
  api.plan({}, FakeApi::Fault::RateLimited);  // Retry-After: 0.2 s, past the deadline below
  api.plan(tool_answer());
  std::vector<storage::ModelCall> calls;
  bool out_of_time = false;
  const Deadline soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  auto reply = run_on(io, detail::call_model(*b, request_with_history(), RetryPolicy{}, pricing,
                                             calls, nullptr, soon, out_of_time));
  ASSERT_FALSE(reply);
  EXPECT_TRUE(out_of_time);
  EXPECT_EQ(calls.size(), 1u);
}

TEST(Backoff, GrowsExponentiallyWithJitterUnderTheCap) {
  RetryPolicy policy{.base_delay = std::chrono::milliseconds(1000),
                     .max_delay = std::chrono::milliseconds(8000)};
  std::mt19937 random(42);
  ModelFailure f{FailureKind::Server};
  for (int retry = 1; retry <= 6; ++retry) {
    const auto expected = std::min(1000 << (retry - 1), 8000);
    for (int i = 0; i < 20; ++i) {
      const auto wait = detail::backoff(policy, retry, f, random).count();
      EXPECT_GE(wait, expected / 2);
      EXPECT_LE(wait, expected);
    }
  }
  f.retry_after = std::chrono::milliseconds(30000);
  EXPECT_EQ(detail::backoff(policy, 1, f, random), std::chrono::milliseconds(30000));
}

TEST_F(Backends, AnthropicStreamsThinkingTextAndToolUse) {
  api.chunk_bytes = 3;
  api.plan(tool_answer());
  auto b = backend("anthropic");
  ModelRequest r = request_with_history();
  r.messages[2].reasoning_content = "earlier thought";
  r.thinking = Thinking::Max;
  auto reply = ask(*b, r);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->reasoning_content, tool_answer().reasoning);
  EXPECT_EQ(reply->content, "Looking.");
  ASSERT_EQ(reply->tool_calls.size(), 2u);
  EXPECT_EQ(reply->tool_calls[1].id, "toolu_1");
  EXPECT_EQ(reply->tool_calls[1].arguments, R"({"command": "pwd"})");
  EXPECT_EQ(reply->finish_reason, "tool_calls");
  EXPECT_EQ(reply->usage.prompt_tokens, 1200);
  EXPECT_EQ(reply->usage.cached_tokens, 1024);

  const Json sent = api.requests().back();
  EXPECT_EQ(api.paths().back(), "/v1/messages");
  EXPECT_EQ(sent["system"], "be brief");
  EXPECT_EQ(sent["output_config"]["effort"], "max");
  EXPECT_EQ(sent["tools"][0]["input_schema"]["required"][0], "command");
  const Json& messages = sent["messages"];
  ASSERT_EQ(messages.size(), 3u);  // user, assistant, user (the tool result)
  EXPECT_EQ(messages[1]["content"][0]["type"], "thinking");
  EXPECT_EQ(messages[1]["content"][0]["thinking"], "earlier thought");
  EXPECT_EQ(messages[1]["content"][1]["type"], "tool_use");
  EXPECT_EQ(messages[1]["content"][1]["input"]["command"], "ls");
  EXPECT_EQ(messages[2]["content"][0]["type"], "tool_result");
  EXPECT_EQ(messages[2]["content"][0]["tool_use_id"], "call_a");
}

TEST_F(Backends, CallsThatBreakTheSchemaComeBackWithErrors) {
  FakeApi::Answer a;
  a.calls = {{"bash", R"({"cmd": "ls"})"}, {"nosuch", "{}"}, {"bash", "{not json"}};
  api.plan(a);
  auto b = backend("openai");
  auto reply = ask(*b);
  ASSERT_TRUE(reply) << reply.error().message;
  ASSERT_EQ(reply->tool_calls.size(), 3u);
  EXPECT_FALSE(reply->tool_calls[0].errors.empty());
  EXPECT_EQ(reply->tool_calls[1].errors,
            std::vector<std::string>{"there is no tool named \"nosuch\""});
  ASSERT_FALSE(reply->tool_calls[2].errors.empty());
  EXPECT_EQ(reply->tool_calls[2].errors[0].rfind("the arguments are not a JSON object", 0), 0u);
}

}  // namespace
}  // namespace warren::orchestrator
