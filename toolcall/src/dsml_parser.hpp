#pragma once

#include <memory>

#include "dsml_tags.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall::detail {

// The streaming DSML parser shared by every dialect that writes tool calls as DSML tags; a dialect
// contributes its tokens and block name.
std::unique_ptr<StreamParser> make_dsml_parser(const DsmlDialect& dialect,
                                               const ParserOptions& options, EventSink& sink);

}  // namespace warren::toolcall::detail
