// A train job's settings with the defaults its spec's zeros stand for
// (proto/trainer.proto, TrainJobSpec): the one place they are written, read
// by the service when it checks a submit and by the job worker when it
// builds the Trainer's options, so the two cannot disagree. LibTorch-free.
//
// Thread-safety: a pure function.
#ifndef RECSYS_TRAINER_SERVICE_TRAIN_SPEC_H_
#define RECSYS_TRAINER_SERVICE_TRAIN_SPEC_H_

#include "proto/trainer.pb.h"

namespace recsys {

// The user encoder's attention heads in a train job (the spec has no field
// for them; TrainerOptions::num_heads is set to this).
inline constexpr int kTrainJobAttentionHeads = 2;

// `spec` with every zero or empty setting replaced by its default: model
// iisan, epochs 10, patience 3, batch_size 64, max_len 10, embedding_dim 64,
// bottleneck 64, ffn_dim 256, seed 42, layer_mode every_second, num_groups 6,
// learning_rate 1e-3. Paths and max_steps_per_epoch (0: all) are kept.
recsys::v1::TrainJobSpec TrainSpecWithDefaults(const recsys::v1::TrainJobSpec& spec);

}  // namespace recsys

#endif  // RECSYS_TRAINER_SERVICE_TRAIN_SPEC_H_
