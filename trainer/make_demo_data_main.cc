// Writes the synthetic demo catalog (trainer/data/demo_data.h):
//   make_demo_data --out_dir=/tmp/demo [--num_items=2000 --num_users=4000 ...]
#include <iostream>

#include "absl/flags/flag.h"
#include "common/flags.h"
#include "trainer/data/demo_data.h"

ABSL_FLAG(std::string, out_dir, "", "directory to write items.tsv, users.tsv and the caches");
ABSL_FLAG(int, num_items, 2000, "items");
ABSL_FLAG(int, num_users, 4000, "users");
ABSL_FLAG(int, num_categories, 8, "categories (visible in the text states)");
ABSL_FLAG(int, num_styles, 8, "styles (visible in the image states)");
ABSL_FLAG(int, min_sequence_length, 5, "shortest user sequence");
ABSL_FLAG(int, max_sequence_length, 15, "longest user sequence");
ABSL_FLAG(double, stay_probability, 0.9, "probability that the next item stays in the user's cluster");
ABSL_FLAG(int, text_states, 13, "text states per item (layers + 1)");
ABSL_FLAG(int, text_hidden, 768, "text width");
ABSL_FLAG(int, image_states, 13, "image states per item (layers + 1)");
ABSL_FLAG(int, image_hidden, 768, "image width");
ABSL_FLAG(bool, fp32, false, "store the caches as F32 instead of F16");
ABSL_FLAG(uint64_t, seed, 7, "random seed");

int main(int argc, char** argv) {
  recsys::ParseCommandLineWithHelp(argc, argv, "Writes the synthetic demo catalog.\n  make_demo_data --out_dir=/tmp/demo");
  const std::string out = absl::GetFlag(FLAGS_out_dir);
  if (out.empty()) {
    std::cerr << "--out_dir is required\n";
    return 2;
  }
  recsys::DemoDataOptions o;
  o.num_items = absl::GetFlag(FLAGS_num_items);
  o.num_users = absl::GetFlag(FLAGS_num_users);
  o.num_categories = absl::GetFlag(FLAGS_num_categories);
  o.num_styles = absl::GetFlag(FLAGS_num_styles);
  o.min_sequence_length = absl::GetFlag(FLAGS_min_sequence_length);
  o.max_sequence_length = absl::GetFlag(FLAGS_max_sequence_length);
  o.stay_probability = absl::GetFlag(FLAGS_stay_probability);
  o.text_states = absl::GetFlag(FLAGS_text_states);
  o.text_hidden = absl::GetFlag(FLAGS_text_hidden);
  o.image_states = absl::GetFlag(FLAGS_image_states);
  o.image_hidden = absl::GetFlag(FLAGS_image_hidden);
  o.dtype = absl::GetFlag(FLAGS_fp32) ? recsys::DType::kF32 : recsys::DType::kF16;
  o.seed = absl::GetFlag(FLAGS_seed);
  absl::Status s = recsys::WriteDemoData(recsys::GenerateDemoData(o), o, out);
  if (!s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  std::cout << "wrote demo catalog to " << out << "\n";
  return 0;
}
