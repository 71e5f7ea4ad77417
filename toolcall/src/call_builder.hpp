// Turns the pieces the DSML parser recognises (an invoke, its parameters, their raw values) into
// tool calls: a generated id, the arguments JSON streamed as OpenAI-style deltas, and the per-call
// problems the orchestrator hands back to the model (duplicate parameters, invalid JSON values,
// unknown tools, schema violations). Lenient mode also repairs JSON values and unwraps a lone
// `arguments` parameter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall::detail {

class CallBuilder {
 public:
  CallBuilder(EventSink& sink, std::shared_ptr<const ToolSet> tools, bool lenient,
              std::uint64_t id_seed);

  int count() const { return index_ + 1; }
  const std::string& param_name() const { return param_name_; }

  void begin_call(const std::string& name);
  void begin_param(const std::string& name, bool is_string);
  // Bytes of the current value, in order. False if they are not valid UTF-8 (nothing is used).
  bool value(std::string_view bytes);
  // `at`: where the value ends, for warnings.
  void end_param(std::uint64_t at);
  void add_error(std::string problem) { errors_.push_back(std::move(problem)); }
  void finish_call(std::uint64_t at);

 private:
  std::string next_id();
  void emit_args(std::string_view fragment);
  void warn(const std::string& message, std::uint64_t at);
  void unwrap_lone_arguments(std::uint64_t at);

  EventSink& sink_;
  const std::shared_ptr<const ToolSet> tools_;
  const bool lenient_;
  std::uint64_t id_state_;

  int index_ = -1;
  std::string id_, name_;
  std::vector<std::string> errors_;
  std::vector<std::string> param_names_;
  std::unordered_set<std::string> param_set_;  // filled once a call has many parameters
  std::string param_name_;
  bool param_is_string_ = true;
  // Lenient: the deltas of a call whose first parameter is `arguments` wait for the call's end.
  bool deferring_ = false;
  std::string args_;       // arguments kept for the end of the call (schema check, unwrap)
  std::string raw_value_;  // the current value as written (JSON values, or while deferring)
  std::string scratch_;
};

}  // namespace warren::toolcall::detail
