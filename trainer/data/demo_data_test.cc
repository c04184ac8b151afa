#include "trainer/data/demo_data.h"

#include <cmath>
#include <cstdlib>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gtest/gtest.h"
#include "model/hidden_state_cache.h"
#include "trainer/data/interactions.h"

namespace recsys {
namespace {

DemoDataOptions Small() {
  DemoDataOptions o;
  o.num_items = 64;
  o.num_users = 50;
  o.num_categories = 2;
  o.num_styles = 4;
  o.text_states = 3;
  o.text_hidden = 16;
  o.image_states = 5;
  o.image_hidden = 8;
  return o;
}

// Mean of state `s` over items of a group minus the overall mean, squared norm.
double GroupSeparation(const std::vector<float>& states, const std::vector<int>& group,
                       int states_per_item, int hidden, int s) {
  std::vector<double> mean0(hidden, 0), all(hidden, 0);
  int n0 = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    for (int d = 0; d < hidden; ++d) {
      const double x = states[(i * states_per_item + s) * hidden + d];
      all[d] += x / group.size();
      if (group[i] == 0) mean0[d] += x;
    }
    n0 += group[i] == 0;
  }
  double sep = 0;
  for (int d = 0; d < hidden; ++d) sep += std::pow(mean0[d] / n0 - all[d], 2);
  return sep;
}

TEST(DemoDataTest, DeterministicAndShaped) {
  DemoData a = GenerateDemoData(Small());
  DemoData b = GenerateDemoData(Small());
  EXPECT_EQ(a.sequences, b.sequences);
  EXPECT_EQ(a.text_states, b.text_states);
  EXPECT_EQ(a.text_states.size(), 64u * 3 * 16);
  EXPECT_EQ(a.image_states.size(), 64u * 5 * 8);
  for (const auto& s : a.sequences) {
    EXPECT_GE(s.size(), 5u);
    EXPECT_LE(s.size(), 15u);
  }
}

TEST(DemoDataTest, TextCarriesCategoryImageCarriesStyle) {
  DemoDataOptions o = Small();
  o.num_items = 800;
  o.text_hidden = o.image_hidden = 32;
  DemoData d = GenerateDemoData(o);
  // The category is visible in the last text state, not in the image states.
  const double text_cat = GroupSeparation(d.text_states, d.category, 3, 32, 2);
  const double image_cat = GroupSeparation(d.image_states, d.category, 5, 32, 4);
  const double image_style = GroupSeparation(d.image_states, d.style, 5, 32, 4);
  const double text_style = GroupSeparation(d.text_states, d.style, 3, 32, 2);
  EXPECT_GT(text_cat, 10 * image_cat);
  EXPECT_GT(image_style, 10 * text_style);
}

TEST(DemoDataTest, UsersStayInTheirCluster) {
  DemoData d = GenerateDemoData(Small());
  int same = 0, total = 0;
  for (const auto& keys : d.sequences) {
    std::vector<int> s;  // keys are SYN<index>
    for (const auto& k : keys) s.push_back(std::stoi(k.substr(3)));
    for (size_t t = 1; t < s.size(); ++t) {
      same += d.category[s[t]] == d.category[s[0]] && d.style[s[t]] == d.style[s[0]];
      ++total;
    }
  }
  EXPECT_GT(same, total * 0.7);
}

TEST(DemoDataTest, WritesReadableFiles) {
  const std::string dir = TestTempPath("demo");
  DemoDataOptions o = Small();
  ASSERT_OK(WriteDemoData(GenerateDemoData(o), o, dir));
  ASSERT_OK_AND_ASSIGN(auto data, LoadInteractions(JoinPath(dir, "users.tsv")));
  EXPECT_EQ(data.num_users(), 50);
  ASSERT_OK_AND_ASSIGN(auto img, HiddenStateCache::Open(JoinPath(dir, "image_states.safetensors")));
  EXPECT_EQ(img->info().modality, "image");
  EXPECT_EQ(img->num_states(), 5);
  EXPECT_EQ(img->num_items(), 64);
  EXPECT_TRUE(PathExists(JoinPath(dir, "items.tsv")));
}

}  // namespace
}  // namespace recsys
