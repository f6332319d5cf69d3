#pragma once
// The GPU's 16-bit floating-point types for the emulated build (issue 33): storage types with the names
// of cuda_fp16.h and cuda_bf16.h and the conversions the kernels use, computed as the hardware computes
// them (cvt.rn.f16.f32, cvt.rn.bf16.f32 and back):
//   - float → half / bfloat16: round to nearest, ties to even; overflow to ±infinity (half: from 65520 on);
//     subnormal results kept (half's from 2^-24, bfloat16's as float's); any NaN becomes the canonical
//     0x7FFF (sign dropped), as the GPU's conversion and cuda_fp16.h's host path give;
//   - half / bfloat16 → float: exact (every value of both is a float); a half NaN becomes float's canonical
//     0x7FFFFFFF (cuda_fp16.h's host path), a bfloat16 NaN keeps its bits (it is a float's upper half).
// Checked against cuda_fp16.h / cuda_bf16.h's host conversions on every 13th float bit pattern (330 M:
// none differ) and on all 65536 values back to float (issue 33 note).
// Kernels touch these types only through the functions below (no arithmetic operators), so the same source
// compiles with nvcc against CUDA's headers, where they are intrinsics.
#include <cstdint>

#include "kernels/cuda/emu/cuda_emu.hpp"  // its bit casts (it includes this file at its end)

struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};

namespace lt::cuda_emu::half_detail {
inline uint32_t float_bits(float f) {
  return __float_as_uint(f);
}
inline float bits_float(uint32_t u) {
  return __uint_as_float(u);
}
// `value >> shift` rounded to nearest, ties to even (shift 1..31).
inline uint32_t shift_round_even(uint32_t value, unsigned shift) {
  const uint32_t kept = value >> shift, rest = value & ((1u << shift) - 1), half = 1u << (shift - 1);
  return kept + (rest > half || (rest == half && (kept & 1u)));
}
}  // namespace lt::cuda_emu::half_detail

inline unsigned short __half_as_ushort(__half h) {
  return h.bits;
}
inline __half __ushort_as_half(unsigned short bits) {
  return __half{bits};
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) {
  return h.bits;
}
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short bits) {
  return __nv_bfloat16{bits};
}

inline __half __float2half_rn(float f) {
  using namespace lt::cuda_emu::half_detail;
  const uint32_t x = float_bits(f), sign = (x >> 16) & 0x8000u, u = x & 0x7FFFFFFFu;
  if (u > 0x7F800000u) return __half{0x7FFF};                     // NaN
  if (u == 0x7F800000u) return __half{uint16_t(sign | 0x7C00u)};  // infinity
  const int exponent = int(u >> 23) - 127;                        // of the float
  const uint32_t mantissa = (u & 0x7FFFFFu) | 0x800000u;          // with its leading 1
  if (exponent > 15) return __half{uint16_t(sign | 0x7C00u)};     // beyond 65504's binade
  if (exponent >= -14) {
    // Normal: 10 of the 23 fraction bits kept; a carry out of the fraction moves into the exponent,
    // and out of the largest binade to infinity (0x7C00), as it should.
    const uint32_t biased = uint32_t(exponent + 15) << 10;
    const uint32_t rounded = shift_round_even(u & 0x7FFFFFu, 13);
    return __half{uint16_t(sign | (biased + rounded))};
  }
  // Subnormal: the value in units of 2^-24 is mantissa · 2^(exponent + 1); below 2^-25 it rounds to 0.
  const int shift = -(exponent + 1);
  if (shift > 24) return __half{uint16_t(sign)};
  return __half{uint16_t(sign | shift_round_even(mantissa, unsigned(shift)))};
}

inline float __half2float(__half h) {
  using namespace lt::cuda_emu::half_detail;
  const uint32_t sign = uint32_t(h.bits & 0x8000u) << 16, exponent = (h.bits >> 10) & 0x1Fu, fraction = h.bits & 0x3FFu;
  if (exponent == 0x1F) return bits_float(fraction ? 0x7FFFFFFFu : sign | 0x7F800000u);  // NaN, infinity
  if (exponent == 0) {
    // ±0 or subnormal: fraction · 2^-24, exactly a float.
    const float magnitude = float(fraction) * bits_float(0x33800000u);  // 2^-24
    return sign ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent - 15 + 127) << 23) | (fraction << 13));
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  using namespace lt::cuda_emu::half_detail;
  const uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return __nv_bfloat16{0x7FFF};  // NaN
  // The upper 16 bits rounded on the lower 16, ties to even (infinity stays; the largest floats round
  // up to it, as on the GPU). In 64 bits, so the sign bit's carry cannot wrap.
  const uint64_t rounded = (uint64_t(x) + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
  return __nv_bfloat16{uint16_t(rounded)};
}

inline float __bfloat162float(__nv_bfloat16 h) {
  return lt::cuda_emu::half_detail::bits_float(uint32_t(h.bits) << 16);
}
