#include "trainer/training/trainer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/training/test_util.h"

namespace recsys {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TrainerOptions Small() {
  TrainerOptions o;
  o.embedding_dim = 16;
  o.bottleneck = 8;
  o.ffn_dim = 32;
  o.batch_size = 32;
  o.max_len = 6;
  o.epochs = 2;
  o.num_threads = 1;
  o.log_interval = absl::ZeroDuration();
  return o;
}

using TrainerTest = TinyCatalogTest;

TEST_F(TrainerTest, DeterministicUnderASeed) {
  std::vector<std::vector<NamedTensor>> params;
  std::vector<double> losses;
  for (uint64_t seed : {5u, 5u, 6u}) {
    TrainerOptions o = Small();
    o.seed = seed;
    ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(o, &catalog_.data, store_.get()));
    ASSERT_OK_AND_ASSIGN(double loss, t->TrainEpoch(1));
    losses.push_back(loss);
    ASSERT_OK_AND_ASSIGN(auto p, t->Parameters());
    params.push_back(std::move(p));
  }
  EXPECT_EQ(losses[0], losses[1]);
  EXPECT_NE(losses[0], losses[2]);
  ASSERT_EQ(params[0].size(), params[1].size());
  for (size_t i = 0; i < params[0].size(); ++i) {
    EXPECT_EQ(params[0][i].values, params[1][i].values) << params[0][i].name;
  }
}

// --threads=2 splits each step over two workers (item chunks, row shards,
// detach boundaries): with dropout on, the losses and weights are those of
// the single-thread step, up to float rounding of the sums split in two.
// Two 2-thread runs are bit-identical.
TEST_F(TrainerTest, TwoThreadsTrainLikeOne) {
  std::vector<std::vector<NamedTensor>> params;
  std::vector<std::vector<double>> losses;
  for (int threads : {1, 2, 2}) {
    TrainerOptions o = Small();
    o.num_threads = threads;
    o.dropout = 0.2;
    o.max_steps_per_epoch = 4;
    ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(o, &catalog_.data, store_.get()));
    EXPECT_EQ(t->phase_times().shards, threads);
    losses.emplace_back();
    for (int epoch = 1; epoch <= 2; ++epoch) {
      ASSERT_OK_AND_ASSIGN(double loss, t->TrainEpoch(epoch));
      losses.back().push_back(loss);
    }
    ASSERT_OK_AND_ASSIGN(auto p, t->Parameters());
    params.push_back(std::move(p));
  }
  for (size_t e = 0; e < losses[0].size(); ++e) {
    EXPECT_NEAR(losses[1][e], losses[0][e], 1e-5) << "epoch " << e + 1;
    EXPECT_EQ(losses[2][e], losses[1][e]) << "epoch " << e + 1;
  }
  ASSERT_EQ(params[0].size(), params[1].size());
  double moved = 0;
  for (size_t i = 0; i < params[0].size(); ++i) {
    ASSERT_EQ(params[0][i].values.size(), params[1][i].values.size());
    EXPECT_EQ(params[2][i].values, params[1][i].values) << params[1][i].name;
    // The key bias (rows [d, 2d) of qkv.bias) has a true gradient of 0
    // (a query's scores all shift by q.b_k, which the softmax removes);
    // its computed gradient is rounding noise, which Adam scales up to
    // lr-sized steps of either sign. Those weights carry no signal either
    // way and are left out.
    const bool qkv_bias = absl::EndsWith(params[0][i].name, ".qkv.bias");
    const size_t d = static_cast<size_t>(Small().embedding_dim);
    for (size_t k = 0; k < params[0][i].values.size(); ++k) {
      if (qkv_bias && k >= d && k < 2 * d) continue;
      ASSERT_NEAR(params[1][i].values[k], params[0][i].values[k], 1e-5)
          << params[0][i].name << "[" << k << "]";
    }
  }
  // The runs trained (8 Adam steps moved the weights): equal weights are
  // not equal initial weights.
  TrainerOptions o = Small();
  ASSERT_OK_AND_ASSIGN(auto fresh, Trainer::Create(o, &catalog_.data, store_.get()));
  ASSERT_OK_AND_ASSIGN(auto initial, fresh->Parameters());
  for (size_t i = 0; i < initial.size(); ++i) {
    for (size_t k = 0; k < initial[i].values.size(); ++k) {
      moved = std::max<double>(moved, std::abs(initial[i].values[k] - params[0][i].values[k]));
    }
  }
  EXPECT_GT(moved, 1e-3);
}

// Evaluation with 2 threads ranks 2 user batches (and embeds 2 item
// chunks) at a time: with the same weights, the same embeddings and
// metrics bit for bit, over an odd number of batches and chunks.
TEST_F(TrainerTest, TwoThreadsEvaluateExactlyLikeOne) {
  std::vector<RankingReport> reports;
  std::vector<std::vector<float>> embeddings;
  std::vector<NamedTensor> weights;
  for (int threads : {1, 2}) {
    TrainerOptions o = Small();
    o.num_threads = threads;
    o.eval_batch_size = 32;  // 150 users: 5 batches
    o.item_chunk = 40;       // 96 items: 3 chunks
    o.max_steps_per_epoch = 2;
    ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(o, &catalog_.data, store_.get()));
    if (threads == 1) {
      ASSERT_OK(t->TrainEpoch(1).status());
      ASSERT_OK_AND_ASSIGN(weights, t->Parameters());
    } else {
      ASSERT_OK(t->LoadParameters(weights));
    }
    ASSERT_OK_AND_ASSIGN(RankingReport r, t->Evaluate(t->split().validation));
    reports.push_back(r);
    ASSERT_OK_AND_ASSIGN(auto e, t->ItemEmbeddings());
    embeddings.push_back(std::move(e));
  }
  EXPECT_EQ(reports[0].count, 150);
  EXPECT_EQ(reports[1].count, reports[0].count);
  EXPECT_EQ(reports[1].hit_rate, reports[0].hit_rate);
  EXPECT_EQ(reports[1].ndcg, reports[0].ndcg);
  EXPECT_GT(reports[0].ndcg_at(10), 0);
  EXPECT_EQ(embeddings[1], embeddings[0]);
}

TEST_F(TrainerTest, TrainsEvaluatesAndKeepsTheBestCheckpoint) {
  TrainerOptions o = Small();
  o.checkpoint_path = catalog_.dir + "/best.safetensors";
  ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(o, &catalog_.data, store_.get()));
  ASSERT_OK_AND_ASSIGN(TrainResult r, t->Train());
  ASSERT_EQ(r.epochs.size(), 2u);
  EXPECT_GE(r.best_epoch, 1);
  EXPECT_EQ(r.test.count, 150);
  EXPECT_GT(r.epochs[0].loss, 0);
  EXPECT_GT(r.mean_epoch_seconds, 0);
  // The checkpoint holds the best weights, which the trainer restored.
  ASSERT_OK_AND_ASSIGN(Checkpoint c, ReadCheckpoint(o.checkpoint_path));
  ASSERT_OK_AND_ASSIGN(auto now, t->Parameters());
  ASSERT_EQ(c.tensors.size(), now.size());
  for (size_t i = 0; i < now.size(); ++i) {
    EXPECT_EQ(c.tensors[i].values, now[i].values) << now[i].name;
  }
  EXPECT_THAT(c.config_json, HasSubstr("\"model\":\"iisan\""));
  // A fresh trainer loading the checkpoint scores identically.
  ASSERT_OK_AND_ASSIGN(auto t2, Trainer::Create(o, &catalog_.data, store_.get()));
  // Statistics saved beside the weights in a version dir are not parameters.
  std::vector<NamedTensor> with_stats = c.tensors;
  with_stats.push_back({"state_standardization.text.mean", {1}, {0.5f}});
  ASSERT_OK(t2->LoadParameters(with_stats));
  with_stats.push_back({"item_encoder.no_such.weight", {1}, {0.5f}});
  EXPECT_THAT(t2->LoadParameters(with_stats),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown parameter")));
  ASSERT_OK(t2->LoadParameters(c.tensors));
  ASSERT_OK_AND_ASSIGN(RankingReport again, t2->Evaluate(t2->split().test));
  EXPECT_DOUBLE_EQ(again.ndcg_at(10), r.test.ndcg_at(10));
  ASSERT_OK_AND_ASSIGN(auto emb, t2->ItemEmbeddings());
  EXPECT_EQ(emb.size(), static_cast<size_t>(catalog_.data.num_items() * 16));
  ASSERT_OK_AND_ASSIGN(auto users, t2->UserVectors({{0, 1, 2}, {3}}));
  EXPECT_EQ(users.size(), 2u * 16);
}

TEST_F(TrainerTest, BaselinesRun) {
  TrainerOptions o = Small();
  o.model = "popularity";
  ASSERT_OK_AND_ASSIGN(auto pop, Trainer::Create(o, &catalog_.data, nullptr));
  ASSERT_OK_AND_ASSIGN(TrainResult p, pop->Train());
  EXPECT_EQ(p.test.count, 150);
  EXPECT_GT(p.test.hr(20), 0);
  // Demo users repeat items, so counting repeated targets as misses lowers HR.
  EXPECT_EQ(p.test_repeats_as_misses.count, 150);
  EXPECT_LT(p.test_repeats_as_misses.hr(20), p.test.hr(20));
  EXPECT_THAT(pop->ItemEmbeddings(), StatusIs(absl::StatusCode::kFailedPrecondition));
  o.model = "sasrec";
  o.epochs = 1;
  ASSERT_OK_AND_ASSIGN(auto sas, Trainer::Create(o, &catalog_.data, nullptr));
  ASSERT_OK_AND_ASSIGN(TrainResult s, sas->Train());
  EXPECT_EQ(s.epochs.size(), 1u);
}

TEST_F(TrainerTest, RejectsBadOptions) {
  TrainerOptions o = Small();
  o.model = "iisan";
  EXPECT_THAT(Trainer::Create(o, &catalog_.data, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cache")));
  o.device = "tpu";
  EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("device")));
  o.device = "cpu";
  o.embedding_dim = 15;
  EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_heads")));
  o.embedding_dim = 16;
  o.model = "gru4rec";
  EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  o.model = "iisan";
  ASSERT_OK(Trainer::Create(o, &catalog_.data, store_.get()).status());
  // patience 0 trained nothing and returned the untrained networks as a
  // successful run; NaN and negative rates were taken by the service's
  // worker for "use the default".
  o.patience = 0;
  EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("patience must be >= 1")));
  o.patience = 3;
  o.max_steps_per_epoch = -7;
  EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_steps_per_epoch")));
  o.max_steps_per_epoch = 0;
  for (double lr : {std::nan(""), -1e-3, 0.0, 5e-324, HUGE_VAL}) {
    o.user_encoder_lr = lr;
    EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("user_encoder_lr")))
        << lr;
  }
  o.user_encoder_lr = 1e-3;
  for (int threads : {-1, kMaxTrainerThreads + 1, 100000}) {
    o.num_threads = threads;
    EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_threads must be in")))
        << threads;
  }
  o.num_threads = 0;
  o.item_tower_lr = std::nan("");
  EXPECT_THAT(Trainer::Create(o, &catalog_.data, store_.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item_tower_lr")));
}

TEST_F(TrainerTest, DivergingRunStopsWithAnErrorInsteadOfNaNMetrics) {
  // An absurd learning rate: the first step throws the weights to ~1e30, the
  // next forward pass overflows. Before, training went on and evaluated NaN
  // scores as rank 0 (HR@10 = 1).
  TrainerOptions o = Small();
  o.item_tower_lr = 1e30;
  o.user_encoder_lr = 1e30;
  o.epochs = 1;
  ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(o, &catalog_.data, store_.get()));
  EXPECT_THAT(t->Train(), StatusIs(absl::StatusCode::kInternal,
                                   AllOf(HasSubstr("non-finite loss"), HasSubstr("epoch 1 step"))));
}

// Users u00..u39, user u buys items u, u+1, .., u+4 (mod 40): every item
// occurs in exactly 3 training prefixes, so popularity scores all items the
// same.
InteractionData EqualPopularityData() {
  std::vector<std::string> users;
  std::vector<std::vector<std::string>> seqs;
  for (int u = 0; u < 40; ++u) {
    users.push_back(absl::StrFormat("u%02d", u));
    seqs.emplace_back();
    for (int j = 0; j < 5; ++j) seqs.back().push_back(absl::StrFormat("i%02d", (u + j) % 40));
  }
  return FromKeySequences(users, seqs);
}

TEST(TrainerEvaluationTest, ConstantScoreModelScoresChanceLevelNotPerfect) {
  const InteractionData data = EqualPopularityData();
  TrainerOptions o = Small();
  o.model = "popularity";
  ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(o, &data, nullptr));
  for (int64_t c : t->split().train_item_counts) ASSERT_EQ(c, 3);
  ASSERT_OK_AND_ASSIGN(TrainResult r, t->Train());
  // Test: 4 history items masked, the target ties with the other 35 items.
  // Ties resolved for the target would give 1.0 for every K.
  EXPECT_EQ(r.test.count, 40);
  EXPECT_NEAR(r.test.hr(10), 10.0 / 36, 1e-9);
  EXPECT_NEAR(r.test.hr(5), 5.0 / 36, 1e-9);
  EXPECT_NEAR(r.test.hr(20), 20.0 / 36, 1e-9);
  EXPECT_LT(r.test.ndcg_at(10), r.test.hr(10));
  // Validation: 3 masked, 37 candidates.
  EXPECT_NEAR(r.best_validation.hr(10), 10.0 / 37, 1e-9);
}

TEST(TrainerDataChecksTest, RefusesDataWithNoEvaluableUser) {
  // Two items per user: nothing for leave-one-out to validate or test.
  const InteractionData data =
      FromKeySequences({"a", "b", "c"}, {{"i1", "i2"}, {"i2", "i3"}, {"i1", "i3"}});
  TrainerOptions o = Small();
  for (const char* model : {"popularity", "sasrec"}) {
    o.model = model;
    EXPECT_THAT(Trainer::Create(o, &data, nullptr),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("no user is evaluable"), HasSubstr("at least 3"))))
        << model;
  }
}

TEST(TrainerDataChecksTest, RefusesDataWithNoTrainingTransition) {
  // Three items per user: one training item each, no transition to learn.
  const InteractionData data =
      FromKeySequences({"a", "b"}, {{"i1", "i2", "i3"}, {"i2", "i3", "i1"}});
  TrainerOptions o = Small();
  o.model = "sasrec";
  EXPECT_THAT(Trainer::Create(o, &data, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no training transitions")));
  o.model = "popularity";  // needs no transitions
  EXPECT_OK(Trainer::Create(o, &data, nullptr).status());
}

}  // namespace
}  // namespace recsys
