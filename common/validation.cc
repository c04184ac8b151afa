#include "common/validation.h"

#include "absl/strings/str_cat.h"
#include "common/user_input.h"

namespace recsys {

absl::Status InvalidField(absl::string_view field, absl::string_view expected,
                          absl::string_view got) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", expected, ", got ", got));
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t lo, int64_t hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return InvalidField(field, absl::StrCat("must be in [", lo, ", ", hi, "]"),
                      absl::StrCat(value));
}

absl::Status CheckMaxSize(absl::string_view field, int64_t size, int64_t max) {
  if (size <= max) return absl::OkStatus();
  return InvalidField(field, absl::StrCat("at most ", max, " entries"), absl::StrCat(size));
}

absl::Status CheckNonEmpty(absl::string_view field, absl::string_view value,
                           size_t max_bytes) {
  if (value.empty()) return InvalidField(field, "must not be empty", "''");
  if (value.size() > max_bytes) {
    return InvalidField(field, absl::StrCat("at most ", max_bytes, " bytes"),
                        QuoteUserInput(value));
  }
  return absl::OkStatus();
}

}  // namespace recsys
