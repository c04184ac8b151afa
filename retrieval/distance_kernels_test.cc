#include "retrieval/distance_kernels.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace recsys {
namespace retrieval {
namespace {

double RefIp(const float* a, const float* b, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += double(a[j]) * b[j];
  return s;
}

double RefL2(const float* a, const float* b, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
  return s;
}

// Tolerance for float sums of d products of values in [-1, 1].
double Tol(int d) { return 1e-5 * (d + 1); }

// Every query count around the 3-query passes, row counts around the 4-row
// passes, dimensions with and without 8-lane steps.
TEST(DistanceKernelsTest, BlockMatchesDoublePrecisionReference) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int d : {1, 7, 8, 20, 24, 64, 65}) {
    for (int64_t m : {1, 3, 4, 5, 8, 17, 100, 256}) {
      for (int64_t nq : {1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14}) {
        std::vector<float> queries(nq * d), rows(m * d);
        for (float& v : queries) v = u(rng);
        for (float& v : rows) v = u(rng);
        std::vector<float> out(nq * m, 123.f), pout(out.size(), 123.f);
        InnerProductBlock(queries.data(), nq, rows.data(), m, d, out.data());
        portable::InnerProductBlock(queries.data(), nq, rows.data(), m, d, pout.data());
        for (int64_t q = 0; q < nq; ++q) {
          for (int64_t i = 0; i < m; ++i) {
            const double want = RefIp(queries.data() + q * d, rows.data() + i * d, d);
            ASSERT_NEAR(out[q * m + i], want, Tol(d))
                << "d=" << d << " m=" << m << " nq=" << nq << " q=" << q << " i=" << i;
            ASSERT_NEAR(pout[q * m + i], want, Tol(d));
          }
        }
      }
    }
  }
}

// The block kernel's passes (triples, a last pair, single queries) sum
// every score as InnerProductMany does: the same bits, so a query's hits
// and scores do not depend on how many queries shared its batch.
TEST(DistanceKernelsTest, BlockScoresHaveTheBitsOfOneQueryAtATime) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int d : {7, 20, 64, 65}) {
    for (int64_t m : {3, 5, 256}) {
      for (int64_t nq = 1; nq <= 14; ++nq) {
        std::vector<float> queries(nq * d), rows(m * d);
        for (float& v : queries) v = u(rng);
        for (float& v : rows) v = u(rng);
        std::vector<float> out(nq * m), one(m);
        InnerProductBlock(queries.data(), nq, rows.data(), m, d, out.data());
        for (int64_t q = 0; q < nq; ++q) {
          InnerProductMany(queries.data() + q * d, rows.data(), m, d, one.data());
          for (int64_t i = 0; i < m; ++i) {
            ASSERT_EQ(out[q * m + i], one[i])
                << "d=" << d << " m=" << m << " nq=" << nq << " q=" << q << " i=" << i;
          }
        }
      }
    }
  }
}

TEST(DistanceKernelsTest, FirstAboveFindsTheFirstLargerScore) {
  std::vector<float> s(37, 0.5f);
  EXPECT_EQ(FirstAbove(s.data(), 37, 0.5f), 37);  // equal is not above
  EXPECT_EQ(FirstAbove(s.data(), 0, 0.f), 0);
  for (int64_t at : {0, 3, 7, 8, 15, 16, 36}) {
    std::vector<float> t = s;
    t[at] = 0.75f;
    if (at + 1 < 37) t[at + 1] = 2.f;
    EXPECT_EQ(FirstAbove(t.data(), 37, 0.6f), at) << at;
    EXPECT_EQ(portable::FirstAbove(t.data(), 37, 0.6f), at) << at;
    EXPECT_EQ(FirstAbove(t.data(), at, 0.6f), at) << "stops at n";
  }
  s[5] = std::nanf("");
  EXPECT_EQ(FirstAbove(s.data(), 37, 0.f), 0);
  EXPECT_EQ(FirstAbove(s.data() + 5, 1, 0.f), 1) << "NaN is never above";
}

TEST(DistanceKernelsTest, NamesTheKernelInUse) {
  const std::string name = DistanceKernelName();
  EXPECT_TRUE(name == "avx2+fma" || name == "avx2+fma+avx512vl" || name == "portable") << name;
}

// Every dimension from 1 to 130 covers full 16/8-lane steps and every tail
// length; rows start at unaligned offsets (one float past an aligned buffer).
TEST(DistanceKernelsTest, MatchDoublePrecisionReferenceForEveryTailLength) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int d = 1; d <= 130; ++d) {
    const int n = 11;  // two groups of four rows and a remainder of three
    std::vector<float> buf(1 + (n + 1) * d);
    for (float& v : buf) v = u(rng);
    const float* q = buf.data() + 1;
    const float* base = q + d;
    std::vector<float> ip(n), l2(n), pip(n), pl2(n);
    InnerProductMany(q, base, n, d, ip.data());
    L2SquaredMany(q, base, n, d, l2.data());
    portable::InnerProductMany(q, base, n, d, pip.data());
    portable::L2SquaredMany(q, base, n, d, pl2.data());
    for (int i = 0; i < n; ++i) {
      const float* row = base + i * d;
      ASSERT_NEAR(ip[i], RefIp(q, row, d), Tol(d)) << "d=" << d << " i=" << i;
      ASSERT_NEAR(l2[i], RefL2(q, row, d), Tol(d)) << "d=" << d << " i=" << i;
      ASSERT_NEAR(pip[i], RefIp(q, row, d), Tol(d)) << "d=" << d;
      ASSERT_NEAR(pl2[i], RefL2(q, row, d), Tol(d)) << "d=" << d;
      ASSERT_NEAR(InnerProduct(q, row, d), RefIp(q, row, d), Tol(d)) << d;
      ASSERT_NEAR(L2Squared(q, row, d), RefL2(q, row, d), Tol(d)) << d;
    }
  }
}

TEST(DistanceKernelsTest, HalfRowsMatchTheFloatRowsToFp16Precision) {
  if (!HalfAvailable()) GTEST_SKIP() << "no F16C on this CPU";
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int d : {1, 7, 8, 15, 16, 17, 64, 100}) {
    std::vector<float> q(d), row(d);
    for (float& v : q) v = u(rng);
    for (float& v : row) v = u(rng);
    std::vector<uint16_t> half(d);
    FloatToHalf(row.data(), d, half.data());
    // fp16 keeps 11 significant bits: relative error <= 2^-11 per value.
    const double tol = 1e-3 * d;
    EXPECT_NEAR(InnerProductHalf(q.data(), half.data(), d),
                RefIp(q.data(), row.data(), d), tol) << d;
    EXPECT_NEAR(L2SquaredHalf(q.data(), half.data(), d),
                RefL2(q.data(), row.data(), d), 2 * tol) << d;
  }
  // Exactly representable values convert exactly.
  const float exact[8] = {0.5f, -2.f, 1024.f, 0.f, 3.25f, -0.125f, 1.f, 7.f};
  uint16_t h[8];
  FloatToHalf(exact, 8, h);
  EXPECT_EQ(InnerProductHalf(exact, h, 8), InnerProduct(exact, exact, 8));
}

// Int8 rows: the kernels (dispatched and portable) compute exactly the
// decoded row's distance, for every tail length and unaligned codes.
TEST(DistanceKernelsTest, Int8RowsMatchTheirDecodedValues) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<int> c(-127, 127);
  for (int d = 1; d <= 70; ++d) {
    std::vector<float> q(d), scale(d), scaled_q(d), decoded(d);
    std::vector<int8_t> storage(d + 1);
    int8_t* codes = storage.data() + 1;  // unaligned on purpose
    for (int j = 0; j < d; ++j) {
      q[j] = u(rng);
      scale[j] = 0.01f * (1 + j % 3);
      codes[j] = static_cast<int8_t>(c(rng));
      scaled_q[j] = q[j] * scale[j];
      decoded[j] = codes[j] * scale[j];
    }
    const double ip = RefIp(q.data(), decoded.data(), d);
    const double l2 = RefL2(decoded.data(), q.data(), d);
    EXPECT_NEAR(InnerProductInt8(scaled_q.data(), codes, d), ip, Tol(d)) << d;
    EXPECT_NEAR(portable::InnerProductInt8(scaled_q.data(), codes, d), ip,
                Tol(d)) << d;
    EXPECT_NEAR(L2SquaredInt8(q.data(), scale.data(), codes, d), l2, Tol(d)) << d;
    EXPECT_NEAR(portable::L2SquaredInt8(q.data(), scale.data(), codes, d), l2,
                Tol(d)) << d;
  }
}

TEST(DistanceKernelsTest, ZeroRowsWritesNothing) {
  float q[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float out[1] = {42.f};
  InnerProductMany(q, q, 0, 8, out);
  L2SquaredMany(q, q, 0, 8, out);
  EXPECT_EQ(out[0], 42.f);
}

TEST(DistanceKernelsTest, ExactOnSmallIntegers) {
  // Integer-valued inputs sum exactly in float: results must be exact.
  std::vector<float> a(64), b(64);
  for (int j = 0; j < 64; ++j) {
    a[j] = float(j % 7) - 3;
    b[j] = float(j % 5) - 2;
  }
  EXPECT_EQ(InnerProduct(a.data(), b.data(), 64), float(RefIp(a.data(), b.data(), 64)));
  EXPECT_EQ(L2Squared(a.data(), b.data(), 64), float(RefL2(a.data(), b.data(), 64)));
  EXPECT_EQ(L2Squared(a.data(), a.data(), 64), 0.f);
}

}  // namespace
}  // namespace retrieval
}  // namespace recsys
