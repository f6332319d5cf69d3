#pragma once
// What the cuDNN convolutions (kernels/cuda/cudnn_conv.cu) are told, worked out in plain C++ so that it
// is unit-tested on machines without a GPU (tests/test_cuda.cpp): the NCHW tensor and filter shapes and
// convolution parameters of each op, and the choice among the algorithms cuDNN proposes. The .cu file
// only copies these into descriptors and calls cuDNN.
//
// conv2d (B, in, H, W) * (out, in, k, k) -> (B, out, Ho, Wo) is cuDNN's convolution as it stands. The
// conv-transpose with kernel = stride = k, (B, in, H, W) -> (B, out, kH, kW) with weight (in, out, k, k)
// (PyTorch's ConvTranspose2d layout), is the data gradient of the convolution that maps (B, out, kH, kW)
// to (B, in, H, W) with filter (in, out, k, k), no padding, stride k: its forward is cuDNN's backward
// data, its input gradient cuDNN's forward, its weight gradient cuDNN's backward filter with the roles
// of x and y swapped.
#include <cstddef>
#include <vector>

#include "kernels/cpu/ops.hpp"

namespace lt::conv_plan {

struct Dims {
  int n, c, h, w;
  bool operator==(const Dims& o) const { return n == o.n && c == o.c && h == o.h && w == o.w; }
};

// One cuDNN convolution: x (n, c, h, w) * filter (k = y.c, c, r, s) -> y, with padding and stride.
struct Plan {
  Dims x, filter, y;
  int padding, stride;
};

// cudnnGetConvolution2dForwardOutputDim's arithmetic (dilation 1): what cuDNN will expect y to be.
inline Dims output_dims(const Dims& x, const Dims& filter, int padding, int stride) {
  return {x.n, filter.n, (x.h + 2 * padding - filter.h) / stride + 1, (x.w + 2 * padding - filter.w) / stride + 1};
}

inline Plan conv2d(const ops::Conv2dShape& s) {
  const Dims x{s.batch, s.in_channels, s.height, s.width};
  const Dims filter{s.out_channels, s.in_channels, s.kernel, s.kernel};
  return {x, filter, {s.batch, s.out_channels, s.out_height(), s.out_width()}, s.padding, s.stride};
}

// The convolution whose data gradient is the conv-transpose: x is the transpose's output.
inline Plan conv_transpose(const ops::ConvTransposeShape& s) {
  const int k = s.stride;
  const Dims x{s.batch, s.out_channels, k * s.height, k * s.width};
  const Dims filter{s.in_channels, s.out_channels, k, k};
  return {x, filter, {s.batch, s.in_channels, s.height, s.width}, 0, k};
}

// The plan is one cuDNN accepts and means what the op means: positive sizes, the filter's channels
// those of x, and y what cuDNN computes from x, the filter, padding and stride.
inline bool consistent(const Plan& p) {
  const auto positive = [](const Dims& d) { return d.n > 0 && d.c > 0 && d.h > 0 && d.w > 0; };
  return positive(p.x) && positive(p.filter) && positive(p.y) && p.padding >= 0 && p.stride > 0 &&
         p.filter.c == p.x.c && output_dims(p.x, p.filter, p.padding, p.stride) == p.y;
}

// One of cuDNN's proposals (cudnnGet…Algorithm_v7, best first by its heuristics).
struct Candidate {
  int algo;
  bool succeeded;  // status == CUDNN_STATUS_SUCCESS
  bool deterministic;
  size_t workspace_bytes;
};

// The first proposal that succeeded, needs at most `workspace_limit` bytes and, when `deterministic`,
// is deterministic (train.deterministic); -1 when there is none (the caller falls back to im2col).
inline int choose(const std::vector<Candidate>& candidates, bool deterministic, size_t workspace_limit) {
  for (const Candidate& c : candidates)
    if (c.succeeded && c.workspace_bytes <= workspace_limit && (c.deterministic || !deterministic)) return c.algo;
  return -1;
}

}  // namespace lt::conv_plan
