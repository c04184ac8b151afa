// Rendering user-supplied text inside error messages.
//
// A status message travels in gRPC trailing metadata, which peers bound (8 KB
// by default): echoing a 10 KB collection name in full turns a precise
// INVALID_ARGUMENT into the client's RESOURCE_EXHAUSTED. Every message that
// quotes what a caller sent goes through QuoteUserInput, so it stays short
// and valid UTF-8 whatever the caller sent.
//
// Thread-safety: pure functions.
#ifndef RECSYS_COMMON_USER_INPUT_H_
#define RECSYS_COMMON_USER_INPUT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace recsys {

// How many characters of user input an error message shows.
inline constexpr size_t kQuotedUserInputChars = 64;
inline constexpr size_t kQuotedInputMaxChars = kQuotedUserInputChars;

// `s` in single quotes, at most kQuotedUserInputChars characters (cut at a
// UTF-8 character boundary). Bytes that are not valid UTF-8, control
// characters, quotes and backslashes are escaped (\xNN, \', \\), each
// counting as one character. When cut, "..." closes the quoted text and the
// input's length follows: 'aaaaaaaa...' (10240 bytes).
std::string QuoteUserInput(absl::string_view s);

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF), as proto3 requires of `string` fields. On false,
// *bad_offset (if non-null) is the offset of the first invalid byte.
bool IsValidUtf8(absl::string_view s, size_t* bad_offset = nullptr);

// Cuts `message` to at most `max_bytes` bytes at a UTF-8 boundary, marking
// the cut; for status messages built from several pieces.
std::string TruncateMessage(absl::string_view message, size_t max_bytes);

}  // namespace recsys

#endif  // RECSYS_COMMON_USER_INPUT_H_
