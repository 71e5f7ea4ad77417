// A raw completion (DSML text as the model writes it) made into a ModelReply by the streaming
// parser, as a hosted backend's stream is: shared by the backends that make completions
// themselves (scripted, embedded).
#pragma once

#include <string>
#include <string_view>

#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator::detail {

toolcall::Mode mode_of(Thinking thinking);

// The prompt of `request`, as the V4 encoder writes it.
Result<std::string> encode_prompt(const toolcall::Codec& codec, const ModelRequest& request);

// Parses `completion` leniently against the request's tools, fed in pieces of `chunk_bytes`;
// `id_seed` makes call ids differ from step to step and repeat from run to run. Text the parser
// cannot read at all goes back as plain content, with a warning.
ModelReply reply_from_completion(const toolcall::Codec& codec, std::string_view completion,
                                 const ModelRequest& request, std::size_t id_seed,
                                 std::size_t chunk_bytes);

}  // namespace warren::orchestrator::detail
