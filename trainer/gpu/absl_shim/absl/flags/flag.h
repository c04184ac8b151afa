// Shim (see absl/README): ABSL_FLAG / GetFlag / SetFlag with a process-wide
// registry that flags/parse.h reads. Types: bool, integers, double, float,
// std::string.
#ifndef RECSYS_ABSL_SHIM_FLAG_H_
#define RECSYS_ABSL_SHIM_FLAG_H_
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include "absl/strings/numbers.h"
namespace absl {
namespace flags_internal {
class FlagBase {
 public:
  FlagBase(const char* name, const char* help, const char* file, bool is_bool);
  virtual ~FlagBase() = default;
  virtual bool Parse(std::string_view text) = 0;
  virtual std::string Current() const = 0;
  const char* name() const { return name_; }
  const char* help() const { return help_; }
  const char* file() const { return file_; }
  bool is_bool() const { return is_bool_; }
 private:
  const char* name_;
  const char* help_;
  const char* file_;
  bool is_bool_;
};
inline bool ParseValue(std::string_view t, std::string* v) { *v = std::string(t); return true; }
inline bool ParseValue(std::string_view t, bool* v) {
  if (t == "true" || t == "1" || t == "yes" || t == "t" || t == "y") { *v = true; return true; }
  if (t == "false" || t == "0" || t == "no" || t == "f" || t == "n") { *v = false; return true; }
  return false;
}
inline bool ParseValue(std::string_view t, double* v) { return SimpleAtod(t, v); }
inline bool ParseValue(std::string_view t, float* v) { return SimpleAtof(t, v); }
template <typename T, typename std::enable_if<std::is_integral<T>::value, int>::type = 0>
bool ParseValue(std::string_view t, T* v) { return SimpleAtoi(t, v); }
inline std::string Unparse(const std::string& v) { return v; }
inline std::string Unparse(bool v) { return v ? "true" : "false"; }
template <typename T>
std::string Unparse(const T& v) { return std::to_string(v); }
}  // namespace flags_internal

template <typename T>
class Flag : public flags_internal::FlagBase {
 public:
  Flag(const char* name, const char* help, const char* file, T value)
      : FlagBase(name, help, file, std::is_same<T, bool>::value), value_(std::move(value)) {}
  bool Parse(std::string_view text) override { return flags_internal::ParseValue(text, &value_); }
  std::string Current() const override { return flags_internal::Unparse(value_); }
  const T& Get() const { return value_; }
  void Set(T v) { value_ = std::move(v); }
 private:
  T value_;
};
template <typename T>
T GetFlag(const Flag<T>& f) { return f.Get(); }
template <typename T, typename V>
void SetFlag(Flag<T>* f, const V& v) { f->Set(static_cast<T>(v)); }
}  // namespace absl

#define ABSL_FLAG(Type, name, default_value, help) \
  absl::Flag<Type> FLAGS_##name(#name, help, __FILE__, static_cast<Type>(default_value))
#define ABSL_DECLARE_FLAG(Type, name) extern absl::Flag<Type> FLAGS_##name
#endif
