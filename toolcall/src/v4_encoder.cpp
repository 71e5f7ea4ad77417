// DeepSeek-V4 prompt encoding. The rules, in the order they apply (dsml.md has them in prose):
//   1. request-level tools go on the first message if it is a system message, else on an empty
//      system message inserted first;
//   2. tool messages become <tool_result> blocks of a user turn; consecutive user and tool
//      messages merge into one turn, blocks joined by "\n\n"; results follow the call order;
//   3. drop-thinking (thinking mode, and only when no message carries tools): before the last
//      user/developer turn, assistant reasoning is removed and developer turns are dropped;
//   4. each turn renders on its own, and a user/developer turn followed by an assistant turn (or
//      ending the conversation) is closed by <｜Assistant｜> and <think> or </think>.
#include "v4_encoder.hpp"

#include <algorithm>
#include <unordered_map>

#include "python_json.hpp"
#include "v4_tokens.hpp"

namespace warren::toolcall::detail {

namespace {

struct Block {
  bool tool_result = false;
  std::string_view text;
  std::string_view tool_call_id;
};

// A message after tool results were merged into user turns.
struct Turn {
  Role role;
  const Message* message;     // null for a user turn made only of tool results
  std::vector<Block> blocks;  // user turns

  const std::optional<std::string>& task() const {
    static const std::optional<std::string> none;
    return message ? message->task : none;
  }
};

std::vector<Turn> merge_tool_results(const std::vector<Message>& messages) {
  std::vector<Turn> turns;
  for (const Message& m : messages) {
    const bool into_previous_user = !turns.empty() && turns.back().role == Role::User;
    if (m.role == Role::Tool) {
      Block block{true, m.content, m.tool_call_id};
      if (into_previous_user) {
        turns.back().blocks.push_back(block);
      } else {
        turns.push_back(Turn{Role::User, nullptr, {block}});
      }
    } else if (m.role == Role::User) {
      Block block{false, m.content, {}};
      if (into_previous_user && !turns.back().task()) {
        turns.back().blocks.push_back(block);
      } else {
        turns.push_back(Turn{Role::User, &m, {block}});
      }
    } else {
      turns.push_back(Turn{m.role, &m, {}});
    }
  }
  return turns;
}

// Tool results are put in the order of the calls of the latest assistant turn that made calls
// (matched on tool_call_id; results without a known id sort as if first, stably).
void sort_tool_results(std::vector<Turn>& turns) {
  std::unordered_map<std::string_view, std::size_t> call_order;
  for (Turn& turn : turns) {
    if (turn.role == Role::Assistant && !turn.message->tool_calls.empty()) {
      call_order.clear();
      for (std::size_t i = 0; i < turn.message->tool_calls.size(); ++i) {
        const std::string& id = turn.message->tool_calls[i].id;
        if (!id.empty()) call_order[id] = i;
      }
    } else if (turn.role == Role::User && !call_order.empty()) {
      std::vector<Block> results;
      for (const Block& b : turn.blocks)
        if (b.tool_result) results.push_back(b);
      if (results.size() < 2) continue;
      auto rank = [&](const Block& b) {
        auto it = call_order.find(b.tool_call_id);
        return it == call_order.end() ? std::size_t{0} : it->second;
      };
      std::stable_sort(results.begin(), results.end(),
                       [&](const Block& a, const Block& b) { return rank(a) < rank(b); });
      std::size_t next = 0;
      for (Block& b : turn.blocks)
        if (b.tool_result) b = results[next++];
    }
  }
}

std::ptrdiff_t last_user_index(const std::vector<Turn>& turns) {
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(turns.size()) - 1; i >= 0; --i) {
    const Role r = turns[static_cast<std::size_t>(i)].role;
    if (r == Role::User || r == Role::Developer) return i;
  }
  return -1;
}

std::vector<Turn> drop_thinking(std::vector<Turn> turns) {
  const std::ptrdiff_t last_user = last_user_index(turns);
  std::vector<Turn> kept;
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(turns.size()); ++i) {
    Turn& t = turns[static_cast<std::size_t>(i)];
    if (i >= last_user || t.role == Role::User || t.role == Role::System ||
        t.role == Role::LatestReminder) {
      kept.push_back(std::move(t));
    } else if (t.role == Role::Assistant) {
      kept.push_back(std::move(t));  // its reasoning is not rendered: it precedes the last user
    }                                // developer turns before the last user turn are dropped
  }
  return kept;
}

void append_tools_section(const std::vector<Json>& tools, std::string& out) {
  out += v4::kToolsPreamble;
  for (std::size_t i = 0; i < tools.size(); ++i) {
    if (i) out += '\n';
    append_python_json(tools[i], out);
  }
  out += v4::kToolsEpilogue;
}

void append_tools_and_format(const Message& m, std::string& out) {
  if (!m.tools.empty()) {
    out += "\n\n";
    append_tools_section(m.tools, out);
  }
  if (m.response_format) {
    out += "\n\n";
    out += v4::kResponseFormatPreamble;
    append_python_json(*m.response_format, out);
  }
}

Result<std::string_view> task_token(const std::string& task) {
  for (const auto& t : v4::kTaskTokens)
    if (t.task == task) return t.token;
  return tl::unexpected(Error{"unknown task '" + task +
                              "' (expected action, query, authority, domain, title or read_url)"});
}

}  // namespace

Result<std::string> encode_v4_tool_calls(const std::vector<ToolCall>& calls) {
  std::string out = "\n\n<｜DSML｜tool_calls>\n";
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const ToolCall& call = calls[i];
    // Arguments are decoded from their JSON string; text that is not JSON is kept whole under
    // an "arguments" key, as the reference encoder does.
    auto parsed = parse_json(call.arguments);
    if (!parsed && call.arguments.size() > 0 &&
        parsed.error().message.starts_with("JSON nested deeper"))
      return tl::unexpected(
          Error{"tool call '" + call.name + "': arguments " + parsed.error().message});
    Json args = parsed ? std::move(*parsed) : Json::object({{"arguments", call.arguments}});
    if (!args.is_object()) {
      return tl::unexpected(
          Error{"tool call '" + call.name + "': arguments must be a JSON object"});
    }
    if (i) out += '\n';
    out += "<｜DSML｜invoke name=\"";
    out += call.name;
    out += "\">\n";
    bool first = true;
    for (const auto& [key, value] : args.items()) {
      if (!first) out += '\n';
      first = false;
      out += "<｜DSML｜parameter name=\"";
      out += key;
      if (value.is_string()) {
        out += "\" string=\"true\">";
        out += value.get_ref<const std::string&>();
      } else {
        out += "\" string=\"false\">";
        append_python_json(value, out);
      }
      out += "</｜DSML｜parameter>";
    }
    out += "\n</｜DSML｜invoke>";
  }
  out += "\n</｜DSML｜tool_calls>";
  return out;
}

namespace {

// What the model says in an assistant turn: its thinking (where kept), content and tool calls.
Result<std::string> say_v4_assistant(const Message& m, bool with_thinking) {
  std::string out;
  if (with_thinking) {
    out += m.reasoning_content.value_or("");
    out += v4::kThinkEnd;
  }
  out += m.content;
  if (!m.tool_calls.empty()) {
    auto block = encode_v4_tool_calls(m.tool_calls);
    if (!block) return tl::unexpected(block.error());
    out += *block;
  }
  return out;
}

}  // namespace

Result<std::string> encode_v4_completion(const Message& assistant) {
  return say_v4_assistant(assistant, true);
}

Result<std::string> encode_v4(const ChatRequest& request, const EncodeOptions& options) {
  const bool thinking = options.mode == Mode::Thinking;

  // Rule 1: request-level tools.
  std::vector<Message> with_tools;
  const std::vector<Message>* messages = &request.messages;
  if (!request.tools.empty()) {
    with_tools = request.messages;
    if (with_tools.empty() || with_tools.front().role != Role::System)
      with_tools.insert(with_tools.begin(), Message{Role::System});
    auto& tools = with_tools.front().tools;
    tools.insert(tools.end(), request.tools.begin(), request.tools.end());
    messages = &with_tools;
  }

  // Rule 2.
  std::vector<Turn> turns = merge_tool_results(*messages);
  sort_tool_results(turns);

  // Rule 3.
  // Tools count where the reference keeps them: merging rebuilds user and tool messages without.
  const bool any_tools = std::any_of(messages->begin(), messages->end(), [](const Message& m) {
    return !m.tools.empty() && m.role != Role::User && m.role != Role::Tool;
  });
  const bool drop = options.drop_thinking && !any_tools;
  if (thinking && drop) turns = drop_thinking(std::move(turns));
  const std::ptrdiff_t last_user = last_user_index(turns);

  // Rule 4.
  std::string out(v4::kBos);
  if (thinking && options.effort == Effort::Max && !turns.empty()) out += v4::kReasoningEffortMax;
  for (std::size_t i = 0; i < turns.size(); ++i) {
    const Turn& turn = turns[i];
    const Message* m = turn.message;
    const auto index = static_cast<std::ptrdiff_t>(i);
    switch (turn.role) {
      case Role::System:
        out += m->content;
        append_tools_and_format(*m, out);
        break;
      case Role::Developer:
        if (m->content.empty()) return tl::unexpected(Error{"a developer message needs content"});
        out += v4::kUser;
        out += m->content;
        append_tools_and_format(*m, out);
        break;
      case Role::User:
        out += v4::kUser;
        for (std::size_t b = 0; b < turn.blocks.size(); ++b) {
          if (b) out += "\n\n";
          const Block& block = turn.blocks[b];
          if (block.tool_result) out += v4::kToolResultOpen;
          out += block.text;
          if (block.tool_result) out += v4::kToolResultClose;
        }
        break;
      case Role::LatestReminder:
        out += v4::kLatestReminder;
        out += m->content;
        break;
      case Role::Assistant: {
        // The turn after a task turn is the task's answer: it has no thinking part.
        const bool after_task = i > 0 && turns[i - 1].task().has_value();
        auto said = say_v4_assistant(*m, thinking && !after_task && (!drop || index > last_user));
        if (!said) return tl::unexpected(said.error());
        out += *said;
        if (!m->without_eos) out += v4::kEos;
        break;
      }
      case Role::Tool:
        break;  // merged into user turns above
    }

    // Closing tokens, only where the model speaks next.
    if (i + 1 < turns.size() && turns[i + 1].role != Role::Assistant &&
        turns[i + 1].role != Role::LatestReminder)
      continue;
    if (const auto& task = turn.task()) {
      auto token = task_token(*task);
      if (!token) return tl::unexpected(token.error());
      if (*task == "action") {
        out += v4::kAssistant;
        out += thinking ? v4::kThinkStart : v4::kThinkEnd;
      }
      out += *token;
    } else if (turn.role == Role::User || turn.role == Role::Developer) {
      out += v4::kAssistant;
      out += thinking && (!drop || index >= last_user) ? v4::kThinkStart : v4::kThinkEnd;
    }
  }
  return out;
}

}  // namespace warren::toolcall::detail
