#include "model/checkpoint.h"

#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "common/status_macros.h"

namespace recsys {

absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& ckpt) {
  SafetensorsWriter w;
  for (const NamedTensor& t : ckpt.tensors) {
    RETURN_IF_ERROR(w.AddTensor(
        t.name, DType::kF32, t.shape,
        absl::string_view(reinterpret_cast<const char*>(t.values.data()),
                          t.values.size() * sizeof(float))));
  }
  w.SetMetadata("format", kCheckpointFormat);
  w.SetMetadata("config", ckpt.config_json);
  return w.WriteFile(path);
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  auto fmt = file->metadata().find("format");
  if (fmt == file->metadata().end() || fmt->second != kCheckpointFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a checkpoint (format must be ", kCheckpointFormat, ")"));
  }
  Checkpoint ckpt;
  auto cfg = file->metadata().find("config");
  if (cfg != file->metadata().end()) ckpt.config_json = cfg->second;
  for (const std::string& name : file->names()) {
    ASSIGN_OR_RETURN(TensorView v, file->Get(name));
    NamedTensor t;
    t.name = name;
    t.shape = v.shape;
    t.values.resize(static_cast<size_t>(v.num_elements()));
    RETURN_IF_ERROR(ReadAsFloat(v, 0, v.num_elements(), t.values.data()));
    ckpt.tensors.push_back(std::move(t));
  }
  return ckpt;
}

}  // namespace recsys
