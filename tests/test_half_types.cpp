// The emulation's half and bfloat16 (kernels/cuda/emu/half_types.hpp) against known bit patterns and, over
// every one of their 65536 values, the rules of round to nearest even.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cuda/emu/half_types.hpp"

namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
uint16_t half_bits(float f) {
  return __half_as_ushort(__float2half_rn(f));
}
uint16_t bf16_bits(float f) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

TEST(HalfTypes, Fp16KnownBitPatterns) {
  EXPECT_EQ(half_bits(1.0f), 0x3C00);
  EXPECT_EQ(half_bits(-2.0f), 0xC000);
  EXPECT_EQ(half_bits(0.1f), 0x2E66);
  EXPECT_EQ(half_bits(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(half_bits(-0.0f), 0x8000);
  EXPECT_EQ(half_bits(65504.0f), 0x7BFF);    // the largest half
  EXPECT_EQ(half_bits(65519.996f), 0x7BFF);  // below the midpoint to 65536
  EXPECT_EQ(half_bits(65520.0f), 0x7C00);    // the midpoint: to even, which is infinity
  EXPECT_EQ(half_bits(1e10f), 0x7C00);
  EXPECT_EQ(half_bits(-INFINITY), 0xFC00);
  EXPECT_EQ(half_bits(std::numeric_limits<float>::quiet_NaN()), 0x7FFF);  // canonical, as the GPU
  EXPECT_EQ(half_bits(-std::numeric_limits<float>::quiet_NaN()), 0x7FFF);
  EXPECT_EQ(half_bits(from_bits(0x7F800001u)), 0x7FFF);                         // a signalling NaN too
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -14)), 0x0400);                          // the smallest normal
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -24)), 0x03FF);  // the largest subnormal
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -24)), 0x0001);                          // the smallest subnormal
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -25)), 0x0000);                          // half of it: ties to even, 0
  EXPECT_EQ(half_bits(std::ldexp(3.0f, -26)), 0x0001);                          // three quarters of it
  EXPECT_EQ(half_bits(std::ldexp(3.0f, -25)), 0x0002);                          // 1.5 units: ties to even, 2
  EXPECT_EQ(half_bits(FLT_TRUE_MIN), 0x0000);
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);                          // a tie, down to even
  EXPECT_EQ(half_bits(1.0f + std::ldexp(3.0f, -11)), 0x3C02);                          // a tie, up to even
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -23)), 0x3C01);  // past it
  EXPECT_EQ(__half2float(__ushort_as_half(0x0001)), std::ldexp(1.0f, -24));
  EXPECT_EQ(__half2float(__ushort_as_half(0x7BFF)), 65504.0f);
  EXPECT_EQ(__half2float(__ushort_as_half(0xFC00)), -INFINITY);
  for (uint16_t nan : {0x7E00, 0xFE01, 0x7C01}) {  // to float's canonical NaN, sign dropped
    const float f = __half2float(__ushort_as_half(nan));
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    EXPECT_EQ(bits, 0x7FFFFFFFu) << nan;
  }
  EXPECT_TRUE(std::signbit(__half2float(__ushort_as_half(0x8000))));
}

TEST(HalfTypes, Bf16KnownBitPatterns) {
  EXPECT_EQ(bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(bf16_bits(3.14159265f), 0x4049);
  EXPECT_EQ(bf16_bits(-0.0f), 0x8000);
  EXPECT_EQ(bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // a tie, down to even
  EXPECT_EQ(bf16_bits(1.0f + std::ldexp(3.0f, -8)), 0x3F82);  // a tie, up to even
  EXPECT_EQ(bf16_bits(FLT_MAX), 0x7F80);                      // rounds up to infinity
  EXPECT_EQ(bf16_bits(-FLT_MAX), 0xFF80);
  EXPECT_EQ(bf16_bits(INFINITY), 0x7F80);
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::quiet_NaN()), 0x7FFF);
  EXPECT_EQ(bf16_bits(-std::numeric_limits<float>::quiet_NaN()), 0x7FFF);
  EXPECT_EQ(bf16_bits(from_bits(0x00000001u)), 0x0000);  // subnormals as float's: kept where they round so
  EXPECT_EQ(bf16_bits(from_bits(0x00008000u)), 0x0000);  // a tie to even
  EXPECT_EQ(bf16_bits(from_bits(0x00018000u)), 0x0002);  // a tie up to even
  EXPECT_EQ(bf16_bits(from_bits(0x00010001u)), 0x0001);
  EXPECT_EQ(__bfloat162float(__ushort_as_bfloat16(0x0001)), from_bits(0x00010000u));
  EXPECT_EQ(__bfloat162float(__ushort_as_bfloat16(0xC049)), -3.140625f);
}

// Every value: exact to float, back to the same bits; every midpoint between neighbours to the even one,
// a float ulp either side of it to the nearer one.
template <typename T>
void check_every_value(float (*to_float)(T), T (*from_float)(float), uint16_t (*bits_of)(T), uint16_t max_finite) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const T t{uint16_t(b)};
    const float f = to_float(t);
    if (std::isnan(f)) {
      EXPECT_EQ(bits_of(from_float(f)), 0x7FFF) << b;
      continue;
    }
    ASSERT_EQ(bits_of(from_float(f)), b) << b;
    if ((b & 0x7FFF) >= max_finite) continue;  // the next one up is infinity
    const float next = to_float(T{uint16_t(b + 1)});
    const float mid = f + (next - f) / 2;  // exact in float: both have far fewer significant bits
    ASSERT_TRUE(mid != f && mid != next) << b;
    const uint16_t even = (b & 1) ? uint16_t(b + 1) : uint16_t(b);
    ASSERT_EQ(bits_of(from_float(mid)), even) << b;
    ASSERT_EQ(bits_of(from_float(std::nextafter(mid, f))), b) << b;
    ASSERT_EQ(bits_of(from_float(std::nextafter(mid, next))), uint16_t(b + 1)) << b;
  }
}

TEST(HalfTypes, Fp16RoundsEveryMidpointToEven) {
  check_every_value<__half>(__half2float, __float2half_rn, __half_as_ushort, 0x7BFF);
  // And to float exactly: sign · 2^(e − 15) · 1.fraction, or fraction · 2^-24.
  for (uint32_t b = 0; b < 0x7C00; ++b) {
    const double fraction = double(b & 0x3FF), e = double(b >> 10);
    const double expected = (b >> 10) == 0 ? std::ldexp(fraction, -24) : std::ldexp(1.0 + fraction / 1024, int(e) - 15);
    ASSERT_EQ(double(__half2float(__ushort_as_half(uint16_t(b)))), expected) << b;
  }
}

TEST(HalfTypes, Bf16RoundsEveryMidpointToEven) {
  check_every_value<__nv_bfloat16>(__bfloat162float, __float2bfloat16_rn, __bfloat16_as_ushort, 0x7F7F);
}

}  // namespace
