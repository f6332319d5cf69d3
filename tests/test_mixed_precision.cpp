// Mixed precision on the GPU path (kernels/cuda/gemm.cu; train.precision): a GEMM whose matmul precision is
// bf16 or fp16 reads its inputs rounded to that type and sums in fp32, on the emulated GPU (and on a real
// one where the build has CUDA and a device: scripts/gpu_check.sh runs them), against a host reference that
// rounds with the emulation's conversions (kernels/cuda/emu/half_types.hpp, the GPU's round to nearest
// even) and sums in double; the tolerance is fp32 accumulation's, far below the 16-bit rounding the test
// also sees. The CPU refuses anything but fp32.
#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
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
