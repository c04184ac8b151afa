#include "trainer/training/sharded_adam.h"

#include <vector>

#include "gtest/gtest.h"
#include "trainer/training/flat_parameters.h"

namespace recsys {
namespace {

// Two flat groups (sizes not multiples of 64, so shard ranges cut inside
// a buffer and cross from one to the next), two learning rates, weight
// decay on one: 2 and 3 workers update bit-for-bit as adam.step() does,
// step after step, and leave the optimizer's own state as step() does (a
// later plain step() continues identically).
TEST(ShardedAdamTest, EqualsAdamStepBitForBit) {
  for (int shards : {2, 3}) {
    torch::manual_seed(11);
    std::vector<torch::Tensor> a_init = {torch::randn({37, 5}), torch::randn({19})};
    std::vector<torch::Tensor> b_init = {torch::randn({23, 3}), torch::randn({41})};
    auto make = [&](std::vector<torch::Tensor>* flats) {
      std::vector<torch::Tensor> ga, gb;
      for (const auto& t : a_init) ga.push_back(t.clone().requires_grad_(true));
      for (const auto& t : b_init) gb.push_back(t.clone().requires_grad_(true));
      flats->push_back(FlattenParameters(ga));
      flats->push_back(FlattenParameters(gb));
      std::vector<torch::optim::OptimizerParamGroup> groups;
      groups.emplace_back(std::vector<torch::Tensor>{(*flats)[0]},
                          std::make_unique<torch::optim::AdamOptions>(
                              torch::optim::AdamOptions(1e-2).weight_decay(1e-3)));
      groups.emplace_back(std::vector<torch::Tensor>{(*flats)[1]},
                          std::make_unique<torch::optim::AdamOptions>(
                              torch::optim::AdamOptions(3e-3)));
      return std::make_unique<torch::optim::Adam>(std::move(groups));
    };
    std::vector<torch::Tensor> ref_flat, our_flat;
    auto ref = make(&ref_flat);
    auto ours = make(&our_flat);
    StepWorkers workers(shards);
    for (int step = 0; step < 8; ++step) {
      for (int g = 0; g < 2; ++g) {
        torch::Tensor grad = torch::randn({ref_flat[g].numel()}) * (g + 1);
        ref_flat[g].mutable_grad().copy_(grad);
        our_flat[g].mutable_grad().copy_(grad);
      }
      ref->step();
      if (step < 6) {
        ShardedAdamStep(*ours, workers);
      } else {
        ours->step();  // the state ShardedAdamStep left is Adam's own
      }
      for (int g = 0; g < 2; ++g) {
        ASSERT_TRUE(torch::equal(ref_flat[g], our_flat[g]))
            << shards << " shards, step " << step << ", group " << g << ": max diff "
            << (ref_flat[g] - our_flat[g]).abs().max().item<float>();
      }
    }
    EXPECT_EQ(ours->state().size(), 2u);
    // And the weights moved.
    EXPECT_FALSE(torch::equal(ref_flat[0].detach(), torch::cat({a_init[0].view(-1), a_init[1]})));
  }
}

}  // namespace
}  // namespace recsys
