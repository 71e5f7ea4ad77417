// OpenAI Chat Completions request JSON -> ChatRequest. Every problem is reported with the JSON
// path of the offending field, e.g. "messages[2].tool_calls[0].function: missing 'name'".
#include <string>

#include "json_check.hpp"
#include "python_json.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall {

namespace {

struct RoleName {
  Role role;
  std::string_view name;
};
constexpr RoleName kRoles[] = {
    {Role::System, "system"},       {Role::User, "user"},
    {Role::Assistant, "assistant"}, {Role::Tool, "tool"},
    {Role::Developer, "developer"}, {Role::LatestReminder, "latest_reminder"},
};

std::string type_name(const Json& v) {
  return v.type_name();
}

// Python truthiness, which decides whether the reference renders an optional field.
bool is_truthy(const Json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0.0;
  if (v.is_string() || v.is_array() || v.is_object()) return !v.empty();
  return true;
}

// Content may be a string, null, or an array of parts ({type: text, text}). Text parts are joined
// with `separator`; the reference encoder writes other part types of tool results as
// "[Unsupported TYPE]", and elsewhere they are an error.
Result<std::string> read_content(const Json& v, const std::string& path, bool tool_result) {
  if (v.is_null()) return std::string();
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array())
    return tl::unexpected(
        Error{path + ": expected a string, null or an array of parts, got " + type_name(v)});
  std::string text;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const Json& part = v[i];
    const std::string part_path = path + "[" + std::to_string(i) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      return tl::unexpected(Error{part_path + ": expected a content part object with a 'type'"});
    if (i) text += tool_result ? "\n\n" : "\n";
    const std::string type = part["type"].get<std::string>();
    if (type == "text") {
      if (!part.contains("text") || !part["text"].is_string())
        return tl::unexpected(Error{part_path + ": a text part needs a string 'text'"});
      text += part["text"].get<std::string>();
    } else if (tool_result) {
      text += "[Unsupported " + type + "]";
    } else {
      return tl::unexpected(Error{part_path + ": content parts of type '" + type +
                                  "' are not supported (only text)"});
    }
  }
  return text;
}

Result<std::string> optional_string(const Json& m, const char* key, const std::string& path) {
  if (!m.contains(key) || m[key].is_null()) return std::string();
  if (!m[key].is_string())
    return tl::unexpected(
        Error{path + "." + key + ": expected a string, got " + type_name(m[key])});
  return m[key].get<std::string>();
}

// Accepts OpenAI tool objects ({type: function, function: {...}}) and bare function objects.
Result<std::vector<Json>> read_tools(const Json& v, const std::string& path) {
  if (!v.is_array())
    return tl::unexpected(Error{path + ": expected an array of tools, got " + type_name(v)});
  std::vector<Json> tools;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string tool_path = path + "[" + std::to_string(i) + "]";
    const Json& t = v[i];
    if (!t.is_object()) return tl::unexpected(Error{tool_path + ": expected an object"});
    const Json& fn = t.contains("function") ? t["function"] : t;
    if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string())
      return tl::unexpected(
          Error{tool_path + ": expected {type: \"function\", function: {name, ...}}"});
    tools.push_back(fn);
  }
  return tools;
}

Result<ToolCall> read_tool_call(const Json& v, const std::string& path) {
  if (!v.is_object()) return tl::unexpected(Error{path + ": expected an object"});
  ToolCall call;
  auto id = optional_string(v, "id", path);
  if (!id) return tl::unexpected(id.error());
  call.id = *id;
  const Json* fn = v.contains("function") ? &v["function"] : nullptr;
  if (!fn || !fn->is_object()) return tl::unexpected(Error{path + ": missing 'function' object"});
  if (call.id.empty() && fn->contains("id") && (*fn)["id"].is_string())
    call.id = (*fn)["id"].get<std::string>();  // some clients put the id here
  if (!fn->contains("name") || !(*fn)["name"].is_string())
    return tl::unexpected(Error{path + ".function: missing 'name'"});
  call.name = (*fn)["name"].get<std::string>();
  call.arguments = "{}";  // absent or null: no arguments
  if (fn->contains("arguments")) {
    const Json& args = (*fn)["arguments"];
    if (args.is_string()) {
      call.arguments = args.get<std::string>();
    } else if (args.is_object()) {
      // Some clients replay arguments as an object. Encoding its JSON text keeps the call as the
      // model wrote it (the reference would wrap it in a lone "arguments" parameter).
      call.arguments = detail::python_json(args);
    } else if (!args.is_null()) {
      return tl::unexpected(
          Error{path + ".function.arguments: expected a JSON string, got " + type_name(args)});
    }
  }
  return call;
}

Result<Message> read_message(const Json& m, const std::string& path) {
  if (!m.is_object())
    return tl::unexpected(Error{path + ": expected a message object, got " + type_name(m)});
  if (!m.contains("role") || !m["role"].is_string())
    return tl::unexpected(Error{path + ": missing 'role'"});
  Message msg;
  const std::string role = m["role"].get<std::string>();
  bool known = false;
  for (const auto& r : kRoles) {
    if (r.name == role) {
      msg.role = r.role;
      known = true;
    }
  }
  if (!known)
    return tl::unexpected(
        Error{path + ".role: unknown role '" + role +
              "' (expected system, user, assistant, tool, developer or latest_reminder)"});

  if (m.contains("content")) {
    auto content = read_content(m["content"], path + ".content", msg.role == Role::Tool);
    if (!content) return tl::unexpected(content.error());
    msg.content = std::move(*content);
  }
  // The reference formats a missing value with str.format, which writes None.
  const bool null_content = !m.contains("content") || m["content"].is_null();
  if ((msg.role == Role::Tool && m.contains("content") && null_content) ||
      (msg.role == Role::LatestReminder && null_content))
    msg.content = "None";
  if (m.contains("reasoning_content") && !m["reasoning_content"].is_null()) {
    auto reasoning = optional_string(m, "reasoning_content", path);
    if (!reasoning) return tl::unexpected(reasoning.error());
    msg.reasoning_content = std::move(*reasoning);
  }
  if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
    const Json& calls = m["tool_calls"];
    if (!calls.is_array()) return tl::unexpected(Error{path + ".tool_calls: expected an array"});
    for (std::size_t i = 0; i < calls.size(); ++i) {
      auto call = read_tool_call(calls[i], path + ".tool_calls[" + std::to_string(i) + "]");
      if (!call) return tl::unexpected(call.error());
      msg.tool_calls.push_back(std::move(*call));
    }
  }
  auto tool_call_id = optional_string(m, "tool_call_id", path);
  if (!tool_call_id) return tl::unexpected(tool_call_id.error());
  msg.tool_call_id = std::move(*tool_call_id);
  if (m.contains("tools") && !m["tools"].is_null()) {
    auto tools = read_tools(m["tools"], path + ".tools");
    if (!tools) return tl::unexpected(tools.error());
    msg.tools = std::move(*tools);
  }
  if (m.contains("response_format") && is_truthy(m["response_format"]))
    msg.response_format = m["response_format"];
  if (m.contains("task") && !m["task"].is_null()) {
    auto task = optional_string(m, "task", path);
    if (!task) return tl::unexpected(task.error());
    msg.task = std::move(*task);
  }
  if (m.contains("wo_eos")) {
    if (!m["wo_eos"].is_boolean())
      return tl::unexpected(Error{path + ".wo_eos: expected true or false"});
    msg.without_eos = m["wo_eos"].get<bool>();
  }
  return msg;
}

}  // namespace

Result<Json> parse_json(std::string_view text) {
  // nlohmann parses without recursion, but its ordered objects copy their members when they
  // grow, and copies recurse: the depth is checked on the text first.
  if (detail::json_text_depth(text) > detail::kMaxJsonDepth)
    return tl::unexpected(
        Error{"JSON nested deeper than " + std::to_string(detail::kMaxJsonDepth) + " levels"});
  const detail::JsonCheck check = detail::check_json(text);
  if (!check.valid)
    return tl::unexpected(
        Error{"invalid JSON: " + check.problem + " at byte " + std::to_string(check.at), check.at});
  return Json::parse(text);
}

Result<ChatRequest> chat_request_from_json(const Json& request) {
  // Copies of a JSON value recurse: refuse nesting that could exhaust the stack before copying.
  if (detail::nests_deeper_than(request, detail::kMaxJsonDepth))
    return tl::unexpected(Error{"request: JSON nested deeper than " +
                                std::to_string(detail::kMaxJsonDepth) + " levels"});
  ChatRequest out;
  const Json* messages = &request;
  if (request.is_object()) {
    if (!request.contains("messages")) return tl::unexpected(Error{"request: missing 'messages'"});
    messages = &request["messages"];
    if (request.contains("tools") && !request["tools"].is_null()) {
      auto tools = read_tools(request["tools"], "tools");
      if (!tools) return tl::unexpected(tools.error());
      out.tools = std::move(*tools);
    }
  }
  if (!messages->is_array())
    return tl::unexpected(
        Error{"messages: expected an array of messages, got " + type_name(*messages)});
  for (std::size_t i = 0; i < messages->size(); ++i) {
    auto msg = read_message((*messages)[i], "messages[" + std::to_string(i) + "]");
    if (!msg) return tl::unexpected(msg.error());
    out.messages.push_back(std::move(*msg));
  }
  return out;
}

}  // namespace warren::toolcall
