// Mixed precision on the GPU path (kernels/cuda/gemm.cu; train.precision): a GEMM whose matmul precision is
// bf16 or fp16 reads its inputs rounded to that type and sums in fp32, on the emulated GPU (and on a real
// one where the build has CUDA and a device: scripts/gpu_check.sh runs them), against a host reference that
// rounds with the emulation's conversions (kernels/cuda/emu/half_types.hpp, the GPU's round to nearest
// even) and sums in double; the tolerance is fp32 accumulation's, far below the 16-bit rounding the test
// also sees. The CPU refuses anything but fp32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/ops.hpp"
#include "kernels/cuda/emu/cuda_emu.hpp"
#include "kernels/cuda/emu/emulated.hpp"
#include "src/common/error.hpp"
#include "src/common/rng.hpp"
#include "src/train/device.hpp"
#include "tests/on_each_gpu.hpp"

namespace lt {
namespace {

// A GPU backend's matmul precision for one test, fp32 again after it.
struct PrecisionScope {
  PrecisionScope(const Backend& gpu, Precision p) : be(gpu) { be.set_matmul_precision(p); }
  ~PrecisionScope() { be.set_matmul_precision(Precision::fp32); }
  const Backend& be;
};

class MixedPrecisionOnAGpu : public OnEachGpu {};

float rounded(float v, Precision p) {
  if (p == Precision::bf16) return __bfloat162float(__float2bfloat16_rn(v));
  if (p == Precision::fp16) return __half2float(__float2half_rn(v));
  return v;
}

// Row-major C (m×n) = op(A) op(B) on the GPU `be` with `p`, and in double from inputs rounded to `p`.
struct GemmCase {
  bool trans_a, trans_b;
  int64_t m, n, k;
};
void gemm_both(const Backend& be, const GemmCase& g, Precision p, std::vector<float>& device,
               std::vector<double>& reference) {
  Rng rng(11);
  std::vector<float> a(size_t(g.m * g.k)), b(size_t(g.k * g.n));
  for (float& v : a) v = float(rng.uniform() * 2 - 1);
  for (float& v : b) v = float(rng.uniform() * 2 - 1);
  float *da = static_cast<float*>(be.alloc(a.size() * 4)), *db = static_cast<float*>(be.alloc(b.size() * 4)),
        *dc = static_cast<float*>(be.alloc(size_t(g.m * g.n) * 4));
  be.upload(da, a.data(), a.size() * 4);
  be.upload(db, b.data(), b.size() * 4);
  {
    const PrecisionScope scope(be, p);
    be.gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, 1.f, da, db, 0.f, dc);
  }
  device.assign(size_t(g.m * g.n), 0.f);
  be.download(device.data(), dc, device.size() * 4);
  for (float* d : {da, db, dc}) be.release(d);
  reference.assign(device.size(), 0.0);
  for (int64_t r = 0; r < g.m; ++r)
    for (int64_t c = 0; c < g.n; ++c)
      for (int64_t i = 0; i < g.k; ++i)
        reference[size_t(r * g.n + c)] +=
            double(rounded(g.trans_a ? a[size_t(i * g.m + r)] : a[size_t(r * g.k + i)], p)) *
            double(rounded(g.trans_b ? b[size_t(c * g.k + i)] : b[size_t(i * g.n + c)], p));
}

double max_abs_difference(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst;
}

// Uniform values in [-1, 1) for each of `vectors`, from one generator.
void fill_uniform(std::initializer_list<std::vector<float>*> vectors, uint64_t seed) {
  Rng rng(seed);
  for (std::vector<float>* v : vectors)
    for (float& e : *v) e = float(rng.uniform() * 2 - 1);
}

float* on_device(const Backend& be, const std::vector<float>& host) {
  auto* d = static_cast<float*>(be.alloc(host.size() * 4));
  be.upload(d, host.data(), host.size() * 4);
  return d;
}

std::vector<float> to_host(const Backend& be, const float* device, size_t n) {
  std::vector<float> host(n);
  be.download(host.data(), device, n * 4);
  return host;
}

std::vector<double> rounded_all(const std::vector<float>& v, Precision p) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = rounded(v[i], p);
  return r;
}

// fp32 accumulation of n products of magnitude ≤ 1 (plus a bias): within (n + 1) 2⁻²⁴ of the exact sum.
double accumulation(int64_t n) {
  return double(n + 1) * std::ldexp(1.0, -24);
}

TEST_P(MixedPrecisionOnAGpu, A16BitGemmReadsItsInputsRoundedAndSumsInFloat) {
  for (const GemmCase& g : {GemmCase{false, false, 37, 29, 300}, GemmCase{true, false, 16, 33, 257},
                            GemmCase{false, true, 40, 8, 128}, GemmCase{true, true, 9, 21, 64}}) {
    for (Precision p : {Precision::bf16, Precision::fp16}) {
      std::vector<float> device, unrounded_device;
      std::vector<double> reference, unrounded;
      gemm_both(*gpu_, g, p, device, reference);
      gemm_both(*gpu_, g, Precision::fp32, unrounded_device, unrounded);
      // fp32 accumulation of k products of magnitude ≤ 1: within k · 2⁻²⁴ of the exact sum.
      const double tolerance = accumulation(g.k - 1);
      EXPECT_LE(max_abs_difference(device, reference), tolerance) << precision_name(p) << " k " << g.k;
      EXPECT_LE(max_abs_difference(unrounded_device, unrounded), tolerance);
      // The rounding itself is much larger (2⁻⁹ relative for bf16, 2⁻¹² for fp16): the kernel did round.
      EXPECT_GT(max_abs_difference(device, unrounded), 20 * tolerance) << precision_name(p);
    }
  }
}

// A convolution in bf16/fp16 (im2col writes its columns in the 16-bit type, the GEMM reads them as they
// are) against the CPU's convolution in double of the rounded x, weight and dy: forward, dx and dweight
// to fp32 accumulation; dbias, a sum of fp32 dy that no GEMM reads, to fp32 summation of the unrounded dy.
TEST_P(MixedPrecisionOnAGpu, A16BitConvolutionReadsItsColumnsRoundedAndSumsInFloat) {
  const Backend& be = *gpu_;
  for (const ops::Conv2dShape& s :
       {ops::Conv2dShape{2, 5, 7, 9, 11, 3, 1, 1}, ops::Conv2dShape{2, 6, 4, 10, 8, 3, 2, 1},
        ops::Conv2dShape{1, 9, 6, 5, 7, 1, 1, 0}}) {
    const int64_t pixels = int64_t(s.out_height()) * s.out_width(),
                  k_dim = int64_t(s.in_channels) * s.kernel * s.kernel;
    const size_t nx = size_t(s.batch) * s.in_channels * s.height * s.width, nw = size_t(s.out_channels * k_dim),
                 ny = size_t(s.batch * s.out_channels * pixels);
    std::vector<float> x(nx), w(nw), bias(size_t(s.out_channels)), dy(ny);
    fill_uniform({&x, &w, &bias, &dy}, 5);
    for (Precision p : {Precision::bf16, Precision::fp16}) {
      float *d_x = on_device(be, x), *d_w = on_device(be, w), *d_b = on_device(be, bias), *d_dy = on_device(be, dy),
            *d_y = on_device(be, dy), *d_dx = on_device(be, x), *d_dw = on_device(be, std::vector<float>(nw, 0.f)),
            *d_db = on_device(be, std::vector<float>(bias.size(), 0.f));
      {
        const PrecisionScope scope(be, p);
        be.conv2d_forward(d_x, d_w, d_b, d_y, s);
        be.conv2d_backward(d_x, d_w, d_dy, d_dx, d_dw, d_db, s);
      }
      const std::vector<float> y = to_host(be, d_y, ny), gx = to_host(be, d_dx, nx), gw = to_host(be, d_dw, nw),
                               gb = to_host(be, d_db, bias.size());
      for (float* d : {d_x, d_w, d_b, d_dy, d_y, d_dx, d_dw, d_db}) be.release(d);

      const std::vector<double> rx = rounded_all(x, p), rw = rounded_all(w, p), rdy = rounded_all(dy, p);
      const std::vector<double> b64(bias.begin(), bias.end());
      std::vector<double> ry(ny), rgx(nx), rgw(nw, 0.0), rgb(bias.size(), 0.0), workspace;
      ops::conv2d_forward<double>(rx.data(), rw.data(), b64.data(), ry.data(), s, workspace);
      ops::conv2d_backward<double>(rx.data(), rw.data(), rdy.data(), rgx.data(), rgw.data(), rgb.data(), s, workspace);
      std::vector<double> unrounded_gb(bias.size(), 0.0);
      for (size_t e = 0; e < ny; ++e) unrounded_gb[size_t(e / pixels) % bias.size()] += dy[e];
      std::vector<double> unrounded_y(ny), x64(x.begin(), x.end()), w64(w.begin(), w.end());
      ops::conv2d_forward<double>(x64.data(), w64.data(), b64.data(), unrounded_y.data(), s, workspace);

      const std::string what =
          std::string(precision_name(p)) + " k" + std::to_string(s.kernel) + " s" + std::to_string(s.stride);
      EXPECT_LE(max_abs_difference(y, ry), accumulation(k_dim)) << what;
      EXPECT_LE(max_abs_difference(gx, rgx), accumulation(int64_t(s.out_channels) * s.kernel * s.kernel)) << what;
      EXPECT_LE(max_abs_difference(gw, rgw), accumulation(s.batch * pixels)) << what;
      EXPECT_LE(max_abs_difference(gb, unrounded_gb), accumulation(s.batch * pixels)) << what;
      // The 16-bit rounding is far larger than that: the columns were rounded.
      EXPECT_GT(max_abs_difference(y, unrounded_y), 20 * accumulation(k_dim)) << what;
    }
  }
}

// The conv-transpose likewise: its forward GEMM reads x and the weight converted; its backward's output
// gradient taps are written in the 16-bit type and read as they are by both GEMMs.
TEST_P(MixedPrecisionOnAGpu, A16BitConvTransposeReadsItsTapsRoundedAndSumsInFloat) {
  const Backend& be = *gpu_;
  for (const ops::ConvTransposeShape& s :
       {ops::ConvTransposeShape{2, 6, 5, 4, 7, 2}, ops::ConvTransposeShape{1, 9, 3, 3, 5, 1}}) {
    const int kk = s.stride * s.stride;
    const int64_t pixels = int64_t(s.height) * s.width;
    const size_t nx = size_t(s.batch * s.in_channels * pixels), nw = size_t(s.in_channels * s.out_channels * kk),
                 ny = size_t(s.batch * s.out_channels * kk * pixels);
    std::vector<float> x(nx), w(nw), bias(size_t(s.out_channels)), dy(ny);
    fill_uniform({&x, &w, &bias, &dy}, 8);
    for (Precision p : {Precision::bf16, Precision::fp16}) {
      float *d_x = on_device(be, x), *d_w = on_device(be, w), *d_b = on_device(be, bias), *d_dy = on_device(be, dy),
            *d_y = on_device(be, dy), *d_dx = on_device(be, x), *d_dw = on_device(be, std::vector<float>(nw, 0.f)),
            *d_db = on_device(be, std::vector<float>(bias.size(), 0.f));
      {
        const PrecisionScope scope(be, p);
        be.conv_transpose_forward(d_x, d_w, d_b, d_y, s);
        be.conv_transpose_backward(d_x, d_w, d_dy, d_dx, d_dw, d_db, s);
      }
      const std::vector<float> y = to_host(be, d_y, ny), gx = to_host(be, d_dx, nx), gw = to_host(be, d_dw, nw);
      for (float* d : {d_x, d_w, d_b, d_dy, d_y, d_dx, d_dw, d_db}) be.release(d);

      const std::vector<double> rx = rounded_all(x, p), rw = rounded_all(w, p), rdy = rounded_all(dy, p),
                                b64(bias.begin(), bias.end());
      std::vector<double> ry(ny), rgx(nx), rgw(nw, 0.0), rgb(bias.size(), 0.0), workspace;
      ops::conv_transpose_forward<double>(rx.data(), rw.data(), b64.data(), ry.data(), s, workspace);
      ops::conv_transpose_backward<double>(rx.data(), rw.data(), rdy.data(), rgx.data(), rgw.data(), rgb.data(), s,
                                           workspace);
      const std::string what = std::string(precision_name(p)) + " stride " + std::to_string(s.stride);
      EXPECT_LE(max_abs_difference(y, ry), accumulation(s.in_channels)) << what;
      EXPECT_LE(max_abs_difference(gx, rgx), accumulation(int64_t(s.out_channels) * kk)) << what;
      EXPECT_LE(max_abs_difference(gw, rgw), accumulation(s.batch * pixels)) << what;
    }
  }
}

// The 16-bit type's bits of v rounded to nearest even (the GPU's conversion; kernels/cuda/emu/half_types.hpp).
uint16_t rounded_bits(float v, Precision p) {
  return p == Precision::bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
}

// `n` activations on the device stored narrow: the 16-bit bits of each value rounded.
float* narrow_on_device(const Backend& be, const std::vector<float>& host, Precision p) {
  std::vector<uint16_t> bits(host.size());
  for (size_t i = 0; i < host.size(); ++i) bits[i] = rounded_bits(host[i], p);
  auto* d = static_cast<float*>(be.alloc(bits.size() * 2 + 2));
  be.upload(d, bits.data(), bits.size() * 2);
  return d;
}

// A convolution's y, dx and dweight with x stored in fp32 and narrow (the bits of x rounded): the same bits.
// `nw`, `ny`: the weight's and the output's sizes.
template <class Shape>
void expect_narrow_x_changes_no_bit(const Backend& be, Precision p, const Shape& s, size_t nw, size_t ny,
                                    void (*const Backend::*forward)(const float*, const float*, const float*, float*,
                                                                    const Shape&),
                                    void (*const Backend::*backward)(const float*, const float*, const float*, float*,
                                                                     float*, float*, const Shape&),
                                    const std::string& what) {
  const size_t nx = size_t(s.batch) * s.in_channels * s.height * s.width;
  std::vector<float> x(nx), w(nw), dy(ny);
  fill_uniform({&x, &w, &dy}, 22);
  std::vector<float> outputs[2][3];  // [narrow][y, dx, dweight]
  for (int narrow = 0; narrow < 2; ++narrow) {
    Shape t = s;
    t.x_narrow = narrow == 1;
    float *d_x = narrow ? narrow_on_device(be, x, p) : on_device(be, x), *d_w = on_device(be, w),
          *d_dy = on_device(be, dy), *d_y = on_device(be, dy), *d_dx = on_device(be, x),
          *d_dw = on_device(be, std::vector<float>(nw, 0.f));
    (be.*forward)(d_x, d_w, nullptr, d_y, t);
    (be.*backward)(d_x, d_w, d_dy, d_dx, d_dw, nullptr, t);
    outputs[narrow][0] = to_host(be, d_y, ny), outputs[narrow][1] = to_host(be, d_dx, nx),
    outputs[narrow][2] = to_host(be, d_dw, nw);
    for (float* d : {d_x, d_w, d_dy, d_y, d_dx, d_dw}) be.release(d);
  }
  for (int o = 0; o < 3; ++o) EXPECT_EQ(outputs[1][o], outputs[0][o]) << what << " output " << o;
}

// Activations kept narrow (ConvBnRelu's output under bf16/fp16, layers.hpp): BN + ReLU writes each value
// rounded to the 16-bit type, and a convolution reading x stored so gives the very bits it gives reading
// the fp32 x they were rounded from (its GEMMs round x to that type anyway) — forward, dx and dweight, for
// conv2d 3×3 stride 1 and 2, 1×1 (no im2col) and the conv-transpose. Narrow under fp32 is refused.
TEST_P(MixedPrecisionOnAGpu, NarrowActivationsGiveTheBitsOfRoundingThemAtTheConvolution) {
  const Backend& be = *gpu_;
  for (Precision p : {Precision::bf16, Precision::fp16}) {
    const PrecisionScope scope(be, p);
    const std::string what = precision_name(p);
    {
      const ops::BatchNormShape s{3, 6, 50};
      const size_t n = size_t(s.count() * s.channels);
      std::vector<float> x(n), mean(6), invstd(6), gamma(6), beta(6);
      fill_uniform({&x, &mean, &invstd, &gamma, &beta}, 21);
      for (float& v : invstd) v = std::abs(v) + 0.5f;
      float *d_x = on_device(be, x), *d_mean = on_device(be, mean), *d_invstd = on_device(be, invstd),
            *d_gamma = on_device(be, gamma), *d_beta = on_device(be, beta), *d_y = on_device(be, x);
      auto* d_narrow = static_cast<float*>(be.alloc(n * 2));
      be.batchnorm_relu_apply(d_x, d_mean, d_invstd, d_gamma, d_beta, d_y, s);
      ops::BatchNormShape narrow = s;
      narrow.y_narrow = true;
      be.batchnorm_relu_apply(d_x, d_mean, d_invstd, d_gamma, d_beta, d_narrow, narrow);
      const std::vector<float> y = to_host(be, d_y, n);
      std::vector<uint16_t> bits(n);
      be.download(bits.data(), d_narrow, n * 2);
      size_t wrong = 0;
      for (size_t i = 0; i < n; ++i) wrong += bits[i] != rounded_bits(y[i], p);
      EXPECT_EQ(wrong, 0u) << what << ": BN + ReLU's narrow output";
      for (float* d : {d_x, d_mean, d_invstd, d_gamma, d_beta, d_y, d_narrow}) be.release(d);
    }
    for (const ops::Conv2dShape& s :
         {ops::Conv2dShape{2, 5, 7, 9, 11, 3, 1, 1}, ops::Conv2dShape{2, 6, 4, 10, 8, 3, 2, 1},
          ops::Conv2dShape{1, 9, 6, 5, 7, 1, 1, 0}})
      expect_narrow_x_changes_no_bit(be, p, s, size_t(s.out_channels) * s.in_channels * s.kernel * s.kernel,
                                     size_t(s.batch) * s.out_channels * s.out_height() * s.out_width(),
                                     &Backend::conv2d_forward, &Backend::conv2d_backward,
                                     what + " conv2d k" + std::to_string(s.kernel) + " s" + std::to_string(s.stride));
    for (const ops::ConvTransposeShape& s :
         {ops::ConvTransposeShape{2, 6, 5, 4, 7, 2}, ops::ConvTransposeShape{1, 9, 3, 3, 5, 1}})
      expect_narrow_x_changes_no_bit(be, p, s, size_t(s.in_channels) * s.out_channels * s.stride * s.stride,
                                     size_t(s.batch) * s.out_channels * s.stride * s.stride * s.height * s.width,
                                     &Backend::conv_transpose_forward, &Backend::conv_transpose_backward,
                                     what + " conv-transpose s" + std::to_string(s.stride));
  }
  // Narrow while the matmul precision is fp32: a programming error, not 16-bit data read as floats.
  ops::Conv2dShape s{1, 2, 2, 3, 3, 3, 1, 1};
  s.x_narrow = true;
  const std::vector<float> x(18, 1.f), w(36, 1.f), y(18, 0.f);
  float *d_x = on_device(be, x), *d_w = on_device(be, w), *d_y = on_device(be, y);
  EXPECT_THROW(be.conv2d_forward(d_x, d_w, nullptr, d_y, s), std::logic_error);
  for (float* d : {d_x, d_w, d_y}) be.release(d);
}

TEST(MixedPrecision, TheCpuMultipliesInFp32Only) {
  EXPECT_EQ(parse_precision("bf16", "--train.precision"), Precision::bf16);
  EXPECT_EQ(parse_precision("fp16", "--precision"), Precision::fp16);
  EXPECT_THROW(parse_precision("fp8", "--train.precision"), InputError);
  use_precision(cpu_backend(), Precision::fp32, "--train.precision");  // nothing to do
  try {
    use_precision(cpu_backend(), Precision::bf16, "--train.precision");
    FAIL() << "the CPU took bf16";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "--train.precision=bf16: 16-bit matmuls are a GPU's and the device is cpu (fp32 only); use "
                 "fp32 or a CUDA device");
  }
}

LT_ON_EACH_GPU(MixedPrecisionOnAGpu);

}  // namespace
}  // namespace lt
