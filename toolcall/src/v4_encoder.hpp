#pragma once

#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall::detail {

// The DeepSeek-V4 prompt for a conversation, byte for byte as the reference encoder writes it.
Result<std::string> encode_v4(const ChatRequest& request, const EncodeOptions& options);

// An assistant turn as the model generates it after the prompt (thinking mode): its reasoning,
// "</think>", content and tool calls, without the end of sentence.
Result<std::string> encode_v4_completion(const Message& assistant);

// One assistant turn's tool-call block, from "\n\n<｜DSML｜tool_calls>" to the closing tag.
Result<std::string> encode_v4_tool_calls(const std::vector<ToolCall>& calls);

}  // namespace warren::toolcall::detail
