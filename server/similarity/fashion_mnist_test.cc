#include "server/similarity/fashion_mnist.h"

#include <zlib.h>

#include <map>
#include <string>

#include "common/file_util.h"
#include "common/status_matchers.h"
#include "common/test_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace recsys {
namespace similarity {
namespace {

using ::testing::HasSubstr;

std::string Be32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string ImagesFile(uint32_t count, uint32_t rows, uint32_t cols,
                       size_t pixel_bytes) {
  std::string s = Be32(0x803) + Be32(count) + Be32(rows) + Be32(cols);
  for (size_t i = 0; i < pixel_bytes; ++i) s.push_back(static_cast<char>(i));
  return s;
}

std::string LabelsFile(const std::string& labels) {
  return Be32(0x801) + Be32(labels.size()) + labels;
}

void WriteGzip(const std::string& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, data.data(), data.size()), static_cast<int>(data.size()));
  gzclose(f);
}

TEST(FashionMnistTest, ReadsPlainAndGzippedIdx) {
  const std::string img = TestTempPath("img.idx");
  const std::string lab = TestTempPath("lab.idx.gz");
  ASSERT_OK(WriteFileAtomically(img, ImagesFile(3, 2, 2, 12)));
  WriteGzip(lab, LabelsFile(std::string("\x07\x00\x09", 3)));
  ASSERT_OK_AND_ASSIGN(LabelledImages set, ReadIdxImagesAndLabels(img, lab));
  EXPECT_EQ(set.size(), 3);
  EXPECT_EQ(set.rows, 2);
  EXPECT_EQ(set.cols, 2);
  EXPECT_EQ(set.labels, (std::vector<uint8_t>{7, 0, 9}));
  GrayImage second = set.Image(1);
  EXPECT_EQ(second.width, 2);
  EXPECT_FLOAT_EQ(second.pixels[0], 4 / 255.0f);
  EXPECT_FLOAT_EQ(second.pixels[3], 7 / 255.0f);
}

TEST(FashionMnistTest, RefusesDamagedFiles) {
  const std::string img = TestTempPath("bad_img.idx");
  const std::string lab = TestTempPath("bad_lab.idx");
  ASSERT_OK(WriteFileAtomically(lab, LabelsFile("\x01\x02")));

  ASSERT_OK(WriteFileAtomically(img, ImagesFile(2, 2, 2, 7)));  // one short
  EXPECT_THAT(ReadIdxImagesAndLabels(img, lab),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs 24")));

  ASSERT_OK(WriteFileAtomically(img, ImagesFile(2, 2, 2, 9)));  // one over
  EXPECT_THAT(ReadIdxImagesAndLabels(img, lab),
              StatusIs(absl::StatusCode::kInvalidArgument));

  ASSERT_OK(WriteFileAtomically(img, ImagesFile(3, 2, 2, 12)));  // 3 vs 2
  EXPECT_THAT(ReadIdxImagesAndLabels(img, lab),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("2 labels for 3 images")));

  ASSERT_OK(WriteFileAtomically(img, LabelsFile("0123456789")));  // magic
  EXPECT_THAT(ReadIdxImagesAndLabels(img, lab),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("magic")));

  // A header claiming 4 billion images is refused before anything is read.
  ASSERT_OK(WriteFileAtomically(img, ImagesFile(0xFFFFFFFFu, 28, 28, 10)));
  EXPECT_THAT(ReadIdxImagesAndLabels(img, lab),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));

  ASSERT_OK(WriteFileAtomically(img, ImagesFile(1, 0, 28, 0)));
  EXPECT_THAT(ReadIdxImagesAndLabels(img, lab),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("image size")));

  // Truncated gzip stream.
  std::string gz_path = TestTempPath("trunc.idx.gz");
  WriteGzip(gz_path, ImagesFile(2, 2, 2, 8));
  ASSERT_OK_AND_ASSIGN(std::string gz, ReadFileToString(gz_path));
  ASSERT_OK(WriteFileAtomically(gz_path, gz.substr(0, gz.size() / 2)));
  EXPECT_THAT(ReadIdxImagesAndLabels(gz_path, lab),
              StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_THAT(ReadIdxImagesAndLabels(TestTempPath("absent"), lab),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ReadFashionMnist(TestTempPath("no_such_dir")),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("dataset-fashion-mnist")));
}

TEST(FashionMnistTest, DebianPackageFiles) {
  if (!PathExists(kDebianFashionMnistDir)) {
    GTEST_SKIP() << kDebianFashionMnistDir
                 << " absent: apt-get install dataset-fashion-mnist";
  }
  ASSERT_OK_AND_ASSIGN(FashionMnist data, ReadFashionMnist());
  EXPECT_EQ(data.train.size(), 60000);
  EXPECT_EQ(data.test.size(), 10000);
  EXPECT_EQ(data.train.rows, 28);
  EXPECT_EQ(data.train.cols, 28);
  std::map<int, int> train_counts, test_counts;
  for (uint8_t l : data.train.labels) ++train_counts[l];
  for (uint8_t l : data.test.labels) ++test_counts[l];
  ASSERT_EQ(train_counts.size(), 10u);
  for (const auto& [label, count] : train_counts) EXPECT_EQ(count, 6000);
  for (const auto& [label, count] : test_counts) EXPECT_EQ(count, 1000);
  // Published first labels: train starts 9 (ankle boot), 0; test 9, 2.
  EXPECT_EQ(data.train.labels[0], 9);
  EXPECT_EQ(data.train.labels[1], 0);
  EXPECT_EQ(data.test.labels[0], 9);
  EXPECT_EQ(data.test.labels[1], 2);
  EXPECT_EQ(FashionMnistClassName(9), "Ankle boot");
}

}  // namespace
}  // namespace similarity
}  // namespace recsys
