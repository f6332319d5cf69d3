// The convolutions through cuDNN (the GPU build, when cuDNN is found): descriptors from the plans of
// kernels/cuda/conv_plan.hpp (unit-tested on the CPU), the algorithm cuDNN's heuristics rank first among
// those that fit (deterministic ones only while train.deterministic is set), workspace from the caching
// allocator, FMA math (no TF32: float results as the CPU's, to rounding). Bias and its gradient stay in
// conv.cu (fixed-order channel sums). Each function returns false when cuDNN cannot take the shape, and
// the caller runs its im2col + GEMM path instead.
#include <cudnn.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/buffer.hpp"
#include "kernels/cuda/conv_plan.hpp"
#include "kernels/cuda/device.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt::cuda {
namespace {

void check_cudnn(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) {
    std::fprintf(stderr, "lidartrain: cuDNN error in %s: %s\n", what, cudnnGetErrorString(status));
    std::abort();
  }
}

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    check_cudnn(cudnnCreate(&created), "cudnnCreate");
    check_cudnn(cudnnSetStream(created, stream()), "cudnnSetStream");  // the stream every op runs on
    return created;
  }();
  return h;
}

constexpr size_t kWorkspaceLimit = size_t(256) << 20;

// The descriptors of one plan, destroyed with it.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t filter = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  explicit Descriptors(const conv_plan::Plan& p) {
    check_cudnn(cudnnCreateTensorDescriptor(&x), "descriptor");
    check_cudnn(cudnnCreateTensorDescriptor(&y), "descriptor");
    check_cudnn(cudnnCreateFilterDescriptor(&filter), "descriptor");
    check_cudnn(cudnnCreateConvolutionDescriptor(&conv), "descriptor");
    check_cudnn(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.x.n, p.x.c, p.x.h, p.x.w), "x");
    check_cudnn(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.y.n, p.y.c, p.y.h, p.y.w), "y");
    check_cudnn(cudnnSetFilter4dDescriptor(filter, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.filter.n, p.filter.c,
                                           p.filter.h, p.filter.w),
                "filter");
    check_cudnn(cudnnSetConvolution2dDescriptor(conv, p.padding, p.padding, p.stride, p.stride, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                "convolution");
    check_cudnn(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH), "math type");
  }
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(filter);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

enum Direction { kForward, kBackwardData, kBackwardFilter };

// cuDNN's proposals for one direction, as conv_plan candidates.
template <class Perf>
std::vector<conv_plan::Candidate> candidates_of(const Perf* perf, int count) {
  std::vector<conv_plan::Candidate> out;
  for (int i = 0; i < count; ++i)
    out.push_back({int(perf[i].algo), perf[i].status == CUDNN_STATUS_SUCCESS,
                   perf[i].determinism == CUDNN_DETERMINISTIC, perf[i].memory});
  return out;
}

std::vector<conv_plan::Candidate> proposals(Direction direction, const Descriptors& d) {
  constexpr int kMax = 16;
  int count = 0;
  if (direction == kForward) {
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    check_cudnn(cudnnGetConvolutionForwardAlgorithm_v7(handle(), d.x, d.filter, d.conv, d.y, kMax, &count, perf),
                "forward algorithms");
    return candidates_of(perf, count);
  }
  if (direction == kBackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
    check_cudnn(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle(), d.filter, d.y, d.conv, d.x, kMax, &count, perf),
                "backward data algorithms");
    return candidates_of(perf, count);
  }
  cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
  check_cudnn(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle(), d.x, d.y, d.conv, d.filter, kMax, &count, perf),
              "backward filter algorithms");
  return candidates_of(perf, count);
}

size_t workspace_bytes(Direction direction, const Descriptors& d, int algo) {
  size_t bytes = 0;
  if (direction == kForward)
    check_cudnn(cudnnGetConvolutionForwardWorkspaceSize(handle(), d.x, d.filter, d.conv, d.y,
                                                        cudnnConvolutionFwdAlgo_t(algo), &bytes),
                "forward workspace");
  else if (direction == kBackwardData)
    check_cudnn(cudnnGetConvolutionBackwardDataWorkspaceSize(handle(), d.filter, d.y, d.conv, d.x,
                                                             cudnnConvolutionBwdDataAlgo_t(algo), &bytes),
                "backward data workspace");
  else
    check_cudnn(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle(), d.x, d.y, d.conv, d.filter,
                                                               cudnnConvolutionBwdFilterAlgo_t(algo), &bytes),
                "backward filter workspace");
  return bytes;
}

// The chosen algorithm of a (direction, plan, determinism, workspace limit), asked of cuDNN once.
int algorithm(Direction direction, const conv_plan::Plan& p, const Descriptors& d, size_t limit) {
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, bool, size_t>;
  static std::map<Key, int> chosen;
  static std::mutex mutex;
  const bool deterministic = deterministic_convolutions();
  const Key key{direction,  p.x.n,     p.x.c,    p.x.h, p.x.w,         p.filter.n, p.filter.h,
                p.filter.w, p.padding, p.stride, p.y.h, deterministic, limit};
  const std::lock_guard<std::mutex> lock(mutex);
  const auto found = chosen.find(key);
  if (found != chosen.end()) return found->second;
  return chosen[key] = conv_plan::choose(proposals(direction, d), deterministic, limit);
}

// Whether cuDNN has an algorithm for the plan in that direction (asked once, then cached).
bool available(Direction direction, const conv_plan::Plan& p) {
  if (!conv_plan::consistent(p)) return false;
  const Descriptors d(p);
  return algorithm(direction, p, d, kWorkspaceLimit) >= 0;
}

// Runs `call(descriptors, algo, workspace, bytes)` with the chosen algorithm and its workspace from the
// caching allocator; when the pool cannot give the workspace, with an algorithm that needs none, and
// when there is none, the step's out-of-memory error. Precondition: available(direction, p).
template <class Call>
void run(Direction direction, const conv_plan::Plan& p, const Call& call) {
  const Descriptors d(p);
  int algo = algorithm(direction, p, d, kWorkspaceLimit);
  size_t bytes = workspace_bytes(direction, d, algo), block = 0;
  void* workspace = bytes ? pool_alloc(backend(), bytes, &block) : nullptr;
  if (bytes && !workspace) {
    algo = algorithm(direction, p, d, 0);
    if (algo < 0) throw OutOfDeviceMemory{backend().name, bytes, pool_stats(backend()).in_use_bytes};
    bytes = 0;
  }
  call(d, algo, workspace, bytes);
  if (workspace) pool_free(backend(), workspace, block);  // the next op on the stream reuses it in order
}

const float kOne = 1.f, kZero = 0.f;

}  // namespace

bool cudnn_conv2d_forward(const float* x, const float* weight, float* y, const ops::Conv2dShape& s) {
  const conv_plan::Plan p = conv_plan::conv2d(s);
  if (!available(kForward, p)) return false;
  run(kForward, p, [&](const Descriptors& d, int algo, void* ws, size_t bytes) {
    check_cudnn(cudnnConvolutionForward(handle(), &kOne, d.x, x, d.filter, weight, d.conv,
                                        cudnnConvolutionFwdAlgo_t(algo), ws, bytes, &kZero, d.y, y),
                "conv2d forward");
  });
  return true;
}

bool cudnn_conv2d_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                           const ops::Conv2dShape& s) {
  const conv_plan::Plan p = conv_plan::conv2d(s);
  if (!available(kBackwardFilter, p) || (dx && !available(kBackwardData, p))) return false;
  run(kBackwardFilter, p, [&](const Descriptors& d, int algo, void* ws, size_t bytes) {
    check_cudnn(
        cudnnConvolutionBackwardFilter(handle(), &kOne, d.x, x, d.y, dy, d.conv, cudnnConvolutionBwdFilterAlgo_t(algo),
                                       ws, bytes, &kOne, d.filter, dweight),
        "conv2d backward filter");
  });
  if (dx)
    run(kBackwardData, p, [&](const Descriptors& d, int algo, void* ws, size_t bytes) {
      check_cudnn(cudnnConvolutionBackwardData(handle(), &kOne, d.filter, weight, d.y, dy, d.conv,
                                               cudnnConvolutionBwdDataAlgo_t(algo), ws, bytes, &kZero, d.x, dx),
                  "conv2d backward data");
    });
  return true;
}

bool cudnn_conv_transpose_forward(const float* x, const float* weight, float* y, const ops::ConvTransposeShape& s) {
  // y (the plan's x) is the data gradient of the plan's convolution at x (the plan's y).
  const conv_plan::Plan p = conv_plan::conv_transpose(s);
  if (!available(kBackwardData, p)) return false;
  run(kBackwardData, p, [&](const Descriptors& d, int algo, void* ws, size_t bytes) {
    check_cudnn(cudnnConvolutionBackwardData(handle(), &kOne, d.filter, weight, d.y, x, d.conv,
                                             cudnnConvolutionBwdDataAlgo_t(algo), ws, bytes, &kZero, d.x, y),
                "conv-transpose forward");
  });
  return true;
}

bool cudnn_conv_transpose_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                                   const ops::ConvTransposeShape& s) {
  const conv_plan::Plan p = conv_plan::conv_transpose(s);
  if (!available(kBackwardFilter, p) || (dx && !available(kForward, p))) return false;
  run(kBackwardFilter, p, [&](const Descriptors& d, int algo, void* ws, size_t bytes) {
    check_cudnn(
        cudnnConvolutionBackwardFilter(handle(), &kOne, d.x, dy, d.y, x, d.conv, cudnnConvolutionBwdFilterAlgo_t(algo),
                                       ws, bytes, &kOne, d.filter, dweight),
        "conv-transpose backward filter");
  });
  if (dx)
    run(kForward, p, [&](const Descriptors& d, int algo, void* ws, size_t bytes) {
      check_cudnn(cudnnConvolutionForward(handle(), &kOne, d.x, dy, d.filter, weight, d.conv,
                                          cudnnConvolutionFwdAlgo_t(algo), ws, bytes, &kZero, d.y, dx),
                  "conv-transpose backward data");
    });
  return true;
}

}  // namespace lt::cuda
