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
      // One U+FFFD for the longest start of a sequence there (a lead byte and the continuation
      // bytes that fit it), as Unicode recommends and nlohmann's `replace` does; one for a byte
      // that starts nothing. The next byte may begin a sequence.
      std::size_t bad = 1;
      for (std::size_t k = 3; k > 1; --k)
        if (p + k <= end && detail::utf8_sequence(p, p + k) == detail::kUtf8Truncated) {
          bad = k;
          break;
        }
      out += "\xEF\xBF\xBD";
      p += bad;
    }
  }
  return out;
}

std::size_t incomplete_utf8_tail(std::string_view text) {
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  return detail::utf8_incomplete_tail(begin, begin + text.size());
}

}  // namespace warren::toolcall
