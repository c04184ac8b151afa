#include "trainer/training/sharded_adam.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "trainer/training/flat_parameters.h"

namespace recsys {
namespace {

// Two flat groups (sizes not multiples of 64 or 4, so shard ranges and the
// vector loop's tail cut inside a buffer), two learning rates, weight decay
// on one: what the trainer's optimizer looks like.
struct Optimizer {
  std::vector<torch::Tensor> flats;
  std::unique_ptr<torch::optim::Adam> adam;
};

Optimizer MakeOptimizer() {
  torch::manual_seed(11);
  std::vector<torch::Tensor> ga = {torch::randn({37, 5}).requires_grad_(true),
                                   torch::randn({19}).requires_grad_(true)};
  std::vector<torch::Tensor> gb = {torch::randn({23, 3}).requires_grad_(true),
                                   torch::randn({41}).requires_grad_(true)};
  Optimizer o;
  o.flats.push_back(FlattenParameters(ga));
  o.flats.push_back(FlattenParameters(gb));
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{o.flats[0]},
                      std::make_unique<torch::optim::AdamOptions>(
                          torch::optim::AdamOptions(1e-2).weight_decay(1e-3)));
  groups.emplace_back(std::vector<torch::Tensor>{o.flats[1]},
                      std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(3e-3)));
  o.adam = std::make_unique<torch::optim::Adam>(std::move(groups));
  return o;
}

// The gradients of step `step`, the same for every optimizer under test.
void SetGradients(Optimizer& o, int step) {
  for (int g = 0; g < 2; ++g) {
    torch::manual_seed(100 + 2 * step + g);
    o.flats[g].mutable_grad().copy_(torch::randn({o.flats[g].numel()}) * (g + 1));
  }
}

torch::Tensor State(Optimizer& o, int g, bool second_moment) {
  for (auto& [key, state] : o.adam->state()) {
    auto& s = static_cast<torch::optim::AdamParamState&>(*state);
    if (s.exp_avg().numel() == o.flats[g].numel()) {
      return second_moment ? s.exp_avg_sq() : s.exp_avg();
    }
  }
  return torch::Tensor();
}

// Step after step, on the caller and split over 1 to 3 workers, the
// weights and both moments stay within float rounding of adam.step()'s, and
// the state left behind is Adam's own: a plain step() continues from it.
TEST(ShardedAdamTest, EqualsAdamStepToFloatRounding) {
  for (int shards : {0, 1, 2, 3}) {
    Optimizer ref = MakeOptimizer(), ours = MakeOptimizer();
    std::unique_ptr<StepWorkers> workers;
    if (shards > 0) workers = std::make_unique<StepWorkers>(shards);
    for (int step = 0; step < 10; ++step) {
      SetGradients(ref, step);
      SetGradients(ours, step);
      ref.adam->step();
      if (step < 7) {
        ShardedAdamStep(*ours.adam, workers.get());
      } else {
        ours.adam->step();
      }
      for (int g = 0; g < 2; ++g) {
        for (int what = 0; what < 3; ++what) {
          const torch::Tensor a = what == 0 ? ref.flats[g].detach() : State(ref, g, what == 2);
          const torch::Tensor b = what == 0 ? ours.flats[g].detach() : State(ours, g, what == 2);
          ASSERT_TRUE(b.defined());
          const float diff = (a - b).abs().max().item<float>();
          const float scale = a.abs().max().item<float>();
          EXPECT_LE(diff, 2e-6f * scale) << shards << " workers, step " << step << ", group "
                                         << g << ", " << (what == 0 ? "weights" : "moment");
        }
      }
    }
    EXPECT_EQ(ours.adam->state().size(), 2u);
  }
}

// The update is computed element by element: where the ranges of the
// workers fall changes nothing, bit for bit.
TEST(ShardedAdamTest, SameBitsForAnyNumberOfWorkers) {
  Optimizer alone = MakeOptimizer();
  for (int step = 0; step < 5; ++step) {
    SetGradients(alone, step);
    ShardedAdamStep(*alone.adam, nullptr);
  }
  for (int shards : {1, 2, 3, 5}) {
    Optimizer split = MakeOptimizer();
    StepWorkers workers(shards);
    for (int step = 0; step < 5; ++step) {
      SetGradients(split, step);
      ShardedAdamStep(*split.adam, &workers);
    }
    for (int g = 0; g < 2; ++g) {
      EXPECT_TRUE(torch::equal(alone.flats[g], split.flats[g])) << shards << " workers";
      EXPECT_TRUE(torch::equal(State(alone, g, false), State(split, g, false)));
      EXPECT_TRUE(torch::equal(State(alone, g, true), State(split, g, true)));
    }
  }
  // And the weights moved.
  EXPECT_FALSE(torch::equal(alone.flats[0].detach(), MakeOptimizer().flats[0].detach()));
}

// zero_grad: the same update, bit for bit, and every gradient zero after
// it (what the trainer's next step relies on instead of zero_grad()), at
// any number of workers.
TEST(ShardedAdamTest, ZeroesGradientsInTheSamePass) {
  for (int shards : {0, 2, 3}) {
    Optimizer plain = MakeOptimizer(), zeroing = MakeOptimizer();
    std::unique_ptr<StepWorkers> workers;
    if (shards > 0) workers = std::make_unique<StepWorkers>(shards);
    for (int step = 0; step < 3; ++step) {
      SetGradients(plain, step);
      SetGradients(zeroing, step);
      ShardedAdamStep(*plain.adam, workers.get());
      ShardedAdamStep(*zeroing.adam, workers.get(), /*zero_grad=*/true);
      for (int g = 0; g < 2; ++g) {
        EXPECT_TRUE(torch::equal(plain.flats[g], zeroing.flats[g])) << shards << " workers";
        EXPECT_TRUE(torch::equal(State(plain, g, true), State(zeroing, g, true)));
        EXPECT_EQ(zeroing.flats[g].grad().count_nonzero().item<int64_t>(), 0)
            << shards << " workers, step " << step << ", group " << g;
        EXPECT_GT(plain.flats[g].grad().count_nonzero().item<int64_t>(), 0);
      }
    }
  }
}

// more_grads (a split step's other shards' gradients): the update of the
// summed gradient, bit for bit, rows added in order; zeroed with the
// gradient when asked, kept otherwise.
TEST(ShardedAdamTest, AddsMoreGradientsInOrder) {
  for (int rows : {1, 2}) {
    for (int shards : {0, 2}) {
      Optimizer summed = MakeOptimizer(), split = MakeOptimizer();
      std::unique_ptr<StepWorkers> workers;
      if (shards > 0) workers = std::make_unique<StepWorkers>(shards);
      std::vector<torch::Tensor> more = {torch::zeros({rows, split.flats[0].numel()}),
                                         torch::zeros({rows, split.flats[1].numel()})};
      for (int step = 0; step < 3; ++step) {
        SetGradients(summed, step);
        SetGradients(split, step);
        for (int g = 0; g < 2; ++g) {
          torch::manual_seed(300 + 2 * step + g);
          more[g].copy_(torch::randn(more[g].sizes()));
          torch::Tensor sum = summed.flats[g].grad().clone();
          for (int r = 0; r < rows; ++r) sum = sum + more[g][r];
          summed.flats[g].mutable_grad().copy_(sum);
        }
        const bool zero = step != 1;
        ShardedAdamStep(*summed.adam, workers.get(), zero);
        ShardedAdamStep(*split.adam, workers.get(), zero, more);
        for (int g = 0; g < 2; ++g) {
          EXPECT_TRUE(torch::equal(summed.flats[g], split.flats[g]))
              << rows << " rows, " << shards << " workers, step " << step;
          EXPECT_TRUE(torch::equal(State(summed, g, true), State(split, g, true)));
          EXPECT_EQ(more[g].count_nonzero().item<int64_t>() == 0, zero);
        }
      }
    }
  }
  // A shape that does not fit is refused before anything changes.
  Optimizer o = MakeOptimizer();
  SetGradients(o, 0);
  const torch::Tensor before = o.flats[0].detach().clone();
  EXPECT_THROW(ShardedAdamStep(*o.adam, nullptr, true, {torch::zeros({1, 3})}), c10::Error);
  EXPECT_TRUE(torch::equal(o.flats[0].detach(), before));
}

// A parameter the one-pass update does not take (double) goes to
// adam.step(): the same bits as step() itself.
TEST(ShardedAdamTest, OtherParametersFallBackToStep) {
  auto make = [] {
    torch::manual_seed(3);
    std::vector<torch::Tensor> p = {torch::randn({17}, torch::kDouble).requires_grad_(true)};
    return std::make_pair(p, std::make_unique<torch::optim::Adam>(p, torch::optim::AdamOptions(1e-2)));
  };
  auto [ref_p, ref] = make();
  auto [our_p, ours] = make();
  StepWorkers workers(2);
  for (int step = 0; step < 3; ++step) {
    torch::manual_seed(50 + step);
    const torch::Tensor grad = torch::randn({17}, torch::kDouble);
    ref_p[0].mutable_grad() = grad.clone();
    our_p[0].mutable_grad() = grad.clone();
    ref->step();
    ShardedAdamStep(*ours, &workers, /*zero_grad=*/step == 2);
    ASSERT_TRUE(torch::equal(ref_p[0], our_p[0])) << "step " << step;
  }
  // The fallback zeroes too when asked.
  EXPECT_EQ(our_p[0].grad().count_nonzero().item<int64_t>(), 0);
  EXPECT_GT(ref_p[0].grad().count_nonzero().item<int64_t>(), 0);

  // And adds more_grads first.
  const torch::Tensor grad = torch::randn({17}, torch::kDouble);
  const torch::Tensor extra = torch::randn({1, 17}, torch::kDouble);
  ref_p[0].mutable_grad() = grad + extra[0];
  our_p[0].mutable_grad() = grad.clone();
  ref->step();
  ShardedAdamStep(*ours, &workers, /*zero_grad=*/true, {extra});
  EXPECT_TRUE(torch::equal(ref_p[0], our_p[0]));
  EXPECT_EQ(extra.count_nonzero().item<int64_t>(), 0);
}

}  // namespace
}  // namespace recsys
