// HTML character-reference decoding for catalog titles ("Data Hold &amp;
// Error" -> "Data Hold & Error").
//
// Decodes named references of HTML 4 (&amp; &quot; &reg; &eacute; ... and
// &apos;) and numeric ones (&#39; &#x27;), each terminated by ';'. Numeric
// references to 0, surrogates or beyond U+10FFFF become U+FFFD, as in
// Python's html.unescape. Anything else, including unknown names, is kept
// verbatim. Thread-safe.
#ifndef RECSYS_MODEL_ENCODERS_HTML_UNESCAPE_H_
#define RECSYS_MODEL_ENCODERS_HTML_UNESCAPE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace recsys {

std::string HtmlUnescape(absl::string_view text);

}  // namespace recsys

#endif  // RECSYS_MODEL_ENCODERS_HTML_UNESCAPE_H_
