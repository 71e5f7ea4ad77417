// valid_utf8 (toolcall.hpp), in a file of its own: `warren`'s small executable (cli/) links it
// without the rest of the codec.
#include "utf8.hpp"

#include <string>

#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall {

std::string valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  std::string out;
  out.reserve(text.size());
  while (p < end) {
    const int length = detail::utf8_sequence(p, end);
    if (length > 0) {
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(length));
      p += length;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD for the one byte; the next may begin a sequence
      ++p;
    }
  }
  return out;
}

}  // namespace warren::toolcall
