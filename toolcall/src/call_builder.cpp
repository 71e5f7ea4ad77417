#include "call_builder.hpp"

#include <random>

#include "json_check.hpp"
#include "python_json.hpp"
#include "text_scan.hpp"

namespace warren::toolcall::detail {

CallBuilder::CallBuilder(EventSink& sink, std::shared_ptr<const ToolSet> tools, bool lenient,
                         std::uint64_t id_seed)
    : sink_(sink),
      tools_(std::move(tools)),
      lenient_(lenient),
      id_state_(id_seed ? id_seed : std::random_device{}() * 0x9E3779B97F4A7C15ULL) {}

std::string CallBuilder::next_id() {
  // splitmix64: ids need to be unique within a conversation, not secret.
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) {
    std::uint64_t z = (id_state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    id += kAlphabet[(z ^ (z >> 31)) % 62];
  }
  return id;
}

void CallBuilder::warn(const std::string& message, std::uint64_t at) {
  Event e{EventKind::Warning, message};
  e.offset = at;
  sink_.on_event(e);
}

void CallBuilder::begin_call(const std::string& name) {
  ++index_;
  id_ = next_id();
  name_ = name;
  errors_.clear();
  param_names_.clear();
  param_set_.clear();
  args_.clear();
  deferring_ = false;
  if (tools_ && !tools_->contains(name)) errors_ = tools_->check_arguments(name, Json::object());
  Event e{EventKind::ToolCallBegin};
  e.index = index_;
  e.id = id_;
  e.name = name_;
  sink_.on_event(e);
}

// Arguments are kept here only when they are needed at the end of the call: to check them
// against a schema, or to unwrap a lone `arguments` parameter.
void CallBuilder::emit_args(std::string_view fragment) {
  if (deferring_) {
    args_.append(fragment);
    return;
  }
  if (tools_) args_.append(fragment);
  Event e{EventKind::ArgumentsDelta, fragment};
  e.index = index_;
  sink_.on_event(e);
}

void CallBuilder::begin_param(const std::string& name, bool is_string) {
  // A linear scan is fastest for the few parameters calls have; past 32 a set keeps a hostile
  // completion with thousands of parameters linear.
  bool duplicate = false;
  if (param_names_.size() < 32) {
    for (const std::string& seen : param_names_) duplicate = duplicate || seen == name;
  } else {
    if (param_set_.empty()) param_set_.insert(param_names_.begin(), param_names_.end());
    duplicate = !param_set_.insert(name).second;
  }
  if (duplicate) errors_.push_back("duplicate parameter '" + name + "'");
  if (param_names_.empty() && lenient_ && name == "arguments") {
    deferring_ = true;
  } else if (deferring_) {
    deferring_ = false;  // a second parameter: nothing to unwrap, send what waited
    Event e{EventKind::ArgumentsDelta, args_};
    e.index = index_;
    sink_.on_event(e);
    if (!tools_) args_.clear();
  }
  param_name_ = name;
  param_is_string_ = is_string;
  raw_value_.clear();
  scratch_.assign(param_names_.empty() ? "{" : ", ");
  append_json_string(name, scratch_);
  scratch_ += ": ";
  if (is_string) scratch_ += '"';
  param_names_.push_back(name);
  emit_args(scratch_);
}

bool CallBuilder::value(std::string_view bytes) {
  if (bytes.empty()) return true;
  if (param_is_string_ && !deferring_) {
    // Hot path: text that needs no escaping goes out as it is; the rest is escaped. UTF-8 is
    // checked on the way in both cases.
    const std::size_t plain = json_plain_prefix(bytes);
    if (plain == bytes.size()) {
      emit_args(bytes);
      return true;
    }
    scratch_.assign(bytes.substr(0, plain));
    if (!append_json_string_body_checked(bytes.substr(plain), scratch_)) return false;
    emit_args(scratch_);
    return true;
  }
  bool truncated = false;
  if (find_bad_utf8(bytes, truncated) != std::string_view::npos) return false;
  raw_value_.append(bytes);
  if (param_is_string_) {
    scratch_.clear();
    append_json_string_body(bytes, scratch_);
    emit_args(scratch_);
  }
  return true;
}

void CallBuilder::end_param(std::uint64_t at) {
  if (param_is_string_) {
    emit_args("\"");
    return;
  }
  std::string repaired;
  const JsonCheck check = check_json(raw_value_, lenient_ ? &repaired : nullptr);
  if (check.valid) {
    if (check.repairs)
      warn("parameter '" + param_name_ + "': repaired " + std::to_string(check.repairs) +
               " bad escape(s) or control character(s) in a JSON value",
           at);
    emit_args(check.repairs ? std::string_view(repaired) : std::string_view(raw_value_));
    return;
  }
  const std::size_t first = raw_value_.find_first_not_of(" \t\r\n");
  const char lead = first == std::string::npos ? '\0' : raw_value_[first];
  if (lenient_ && lead != '{' && lead != '[' && lead != '"') {
    warn("parameter '" + param_name_ + "': string=\"false\" value is not JSON; read as a string",
         at);
    scratch_.clear();
    append_json_string(raw_value_, scratch_);
    emit_args(scratch_);
    return;
  }
  errors_.push_back("parameter '" + param_name_ + "': invalid JSON value (" + check.problem +
                    " at byte " + std::to_string(check.at) + ")");
  emit_args(raw_value_);
}

void CallBuilder::finish_call(std::uint64_t at) {
  emit_args(param_names_.empty() ? "{}" : "}");
  if (deferring_) {
    deferring_ = false;
    unwrap_lone_arguments(at);
    Event e{EventKind::ArgumentsDelta, args_};
    e.index = index_;
    sink_.on_event(e);
  }
  if (tools_ && errors_.empty()) {
    auto parsed = parse_json(args_);
    if (parsed) {
      errors_ = tools_->check_arguments(name_, *parsed);
    } else {
      errors_.push_back("arguments: " + parsed.error().message);
    }
  }
  Event e{EventKind::ToolCallEnd};
  e.index = index_;
  e.errors = errors_;
  sink_.on_event(e);
}

// {"arguments": {...}} where the tool has no `arguments` parameter: the object is the call's
// real arguments (a client replayed them as an object; see dsml.md).
void CallBuilder::unwrap_lone_arguments(std::uint64_t at) {
  if (param_names_.size() != 1) return;
  if (tools_) {
    const Json* schema = tools_->schema_for(name_);
    if (schema && schema->contains("properties") && (*schema)["properties"].contains("arguments"))
      return;
  }
  const std::size_t first = raw_value_.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || raw_value_[first] != '{') return;
  if (!check_json(raw_value_).valid) return;
  const std::size_t last = raw_value_.find_last_not_of(" \t\r\n");
  args_.assign(raw_value_, first, last - first + 1);
  warn("unwrapped a lone 'arguments' parameter holding the call's arguments", at);
}

}  // namespace warren::toolcall::detail
