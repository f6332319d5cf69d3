#pragma once
// One op interface, one implementation per device (DESIGN.md §6; ggml's backends): a Backend is a table
// of the ops the models run, on pointers into that backend's memory. The CPU backend (kernels/cpu) wraps
// the float instantiations of kernels/cpu/ops.hpp; the CUDA backend (kernels/cuda/*.cu) runs the
// hand-written kernels, and the same .cu source built through the emulation layer is a third backend that
// CI runs. tests/test_ops.cpp holds the one table of cases that every backend is checked against.
//
// Conventions, for every backend and op (the same as kernels/cpu/ops.hpp):
// - layouts: points (N, C) row-major, maps (B, C, H, W); shapes as the ops.hpp structs;
// - parameter gradients accumulate (+=), input gradients are overwritten unless the name says add;
// - scalar results (losses, norms, counts) are written to one element in the backend's memory, so a
//   device step need not wait for them;
// - every op is deterministic: fixed reduction orders, and no float atomics whose order could change a
//   sum (the float atomicMax of voxelize is order-independent).
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/ops.hpp"

namespace lt {

// One AdamW or SGD step's hyper-parameters for a range of the flat buffers (torch.optim's formulas,
// kernels/common/elementwise.hpp).
struct OptimizerStep {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0, momentum = 0;
  float bias1 = 1, bias2 = 1;  // 1 − β₁ᵗ, 1 − β₂ᵗ
  bool first_step = false;     // SGD: the momentum buffer starts as the gradient
};

// Scratch int64 that heatmap_top_k needs for `cells` heatmap cells: the peaks' cells and scores, and the
// GPU's per-chunk counts of them (chunks of 4096 cells).
inline int64_t heatmap_top_k_work(int64_t cells) {
  return 2 * cells + cells / 4096 + 2;
}

struct Backend {
  const char* name;
  // Its memory is the host's (the CPU): callers may then hand it host arrays without copies. The emulated
  // CUDA build says false although its memory is the host's, so tests go through the copies a GPU needs.
  bool host_memory;

  // ---- memory ----
  void* (*alloc)(size_t bytes);  // null when the memory is not there
  void (*release)(void* pointer);
  void (*upload)(void* dst, const void* host_src, size_t bytes);
  void (*download)(void* host_dst, const void* src, size_t bytes);
  void (*copy)(void* dst, const void* src, size_t bytes);  // within the backend's memory
  void (*fill_zero)(void* pointer, size_t bytes);
  void (*synchronize)();

  // ---- dense layers (the CPU: Eigen; CUDA: cuBLAS GEMMs around hand-written layout kernels) ----
  // Row-major C (m×n) = α op(A) op(B) + β C; op(A) = Aᵀ with trans_a (A stored k×m), likewise B.
  void (*gemm)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
               float beta, float* c);
  void (*linear_forward)(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                         int out);
  void (*linear_backward)(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                          int64_t rows, int in, int out);
  void (*conv2d_forward)(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s);
  void (*conv2d_backward)(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                          const ops::Conv2dShape& s);
  void (*conv_transpose_forward)(const float* x, const float* weight, const float* bias, float* y,
                                 const ops::ConvTransposeShape& s);
  void (*conv_transpose_backward)(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                                  float* dbias, const ops::ConvTransposeShape& s);

  // ---- batch norm: sums (double, 2C: Σ, then the second sum) in backend memory ----
  void (*batchnorm_sums)(const float* x, const ops::BatchNormShape& s, double* sums);
  // mean, invstd (C) from the sums over `count` elements, and the running statistics updated; with
  // training false or count 0, mean and invstd from the running statistics (batchnorm_statistics).
  void (*batchnorm_stats)(const double* sums, int channels, double count, bool training, float* mean, float* invstd,
                          float* running_mean, float* running_var);
  void (*batchnorm_apply)(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                          float* y, const ops::BatchNormShape& s);
  void (*batchnorm_backward_sums)(const float* x, const float* dy, const float* mean, const float* invstd,
                                  const ops::BatchNormShape& s, double* sums);
  void (*batchnorm_backward_apply)(const float* x, const float* dy, const float* mean, const float* invstd,
                                   const float* gamma, const double* sums, double count, float* dx, float* dgamma,
                                   float* dbeta, const ops::BatchNormShape& s);

  // ---- element-wise and layout ----
  void (*add)(float* y, const float* x, int64_t n);  // y += x
  void (*relu_forward)(const float* x, float* y, int64_t n);
  void (*relu_backward)(const float* y, const float* dy, float* dx, int64_t n);
  void (*concat_channels)(const float* a, int ca, const float* b, int cb, int64_t outer, int64_t inner, float* out);
  void (*split_channels)(const float* in, int ca, int cb, int64_t outer, int64_t inner, float* a, float* b);

  // ---- points <-> BEV cells ----
  void (*voxelize_max_forward)(const float* features, const ops::CellIndexView& index, int channels,
                               int64_t cells_per_map, float* grid, int64_t* argmax);
  void (*voxelize_max_backward)(const float* dgrid, const ops::CellIndexView& index, const int64_t* argmax,
                                int channels, int64_t cells_per_map, float* dfeatures);
  void (*scatter_mean_forward)(const float* features, const ops::CellIndexView& index, int channels, float* mean);
  void (*scatter_mean_backward)(const float* dmean, const ops::CellIndexView& index, int channels, float* dfeatures);
  void (*devoxelize_forward)(const float* grid, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                             float* features);
  void (*devoxelize_backward)(const float* dfeatures, const ops::CellIndexView& index, int channels,
                              int64_t cells_per_map, float* dgrid);

  // ---- losses: the value to *loss (one double) ----
  void (*cross_entropy)(const float* logits, const uint8_t* labels, int64_t rows, int classes,
                        const float* class_weights, int ignore_label, float* dlogits, double* loss);
  void (*focal_loss)(const float* logits, const float* targets, int64_t n, float* dlogits, double* loss);
  void (*l1_loss)(const float* pred, const float* target, int64_t rows, int channels, float* dpred, double* loss);

  // ---- detection ----
  void (*gather_positions_forward)(const float* maps, const int64_t* positions, int64_t k, int channels, int64_t plane,
                                   float* rows);
  void (*gather_positions_backward)(const float* drows, const int64_t* positions, int64_t k, int channels,
                                    int64_t plane, float* dmaps);
  void (*max_pool3x3)(const float* x, float* y, int64_t maps, int height, int width);
  // iou[i·m + j] = BEV IoU of a[i] and b[j] (boxes of 7 floats; kernels/common/box_iou.hpp).
  void (*bev_iou_matrix)(const float* a, int64_t n, const float* b, int64_t m, double* iou);
  // CenterPoint's peaks of one frame's heatmaps (`maps` × height × width logits): the cells whose score
  // sigmoid(logit) is ≥ threshold and no smaller than any of its 3×3 neighbours' (the max-pool test),
  // the best min(top_k, peaks) of them by score, ties by cell index (a total order: every backend picks
  // the same cells in the same order). cells[r] (an index into maps·height·width) and scores[r] for rank
  // r, best first; *count = how many. `work`: heatmap_top_k_work(maps·height·width) int64 of scratch.
  void (*heatmap_top_k)(const float* logits, int64_t maps, int height, int width, float threshold, int top_k,
                        int64_t* work, int64_t* cells, float* scores, int64_t* count);
  // Greedy rotated NMS over n boxes (7 floats) sorted best first: keep[i] = 1 unless an earlier kept box of
  // the same label overlaps box i with BEV IoU > iou (bev_iou(earlier, i)). `work`: n·⌈n/64⌉ uint64 of
  // scratch (the GPU's suppression mask; the CPU needs none).
  void (*rotated_nms)(const float* boxes, const int32_t* labels, int64_t n, double iou, uint64_t* work, uint8_t* keep);

  // ---- optimizer over a range of the flat buffers ----
  void (*adamw_update)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                       const OptimizerStep& step);
  void (*sgd_update)(float* param, const float* grad, float* momentum_buffer, int64_t n, const OptimizerStep& step);
  // *sum = Σ x² in double (the gradient norm's square); scale: x *= factor.
  void (*sum_squares)(const float* x, int64_t n, double* sum);
  void (*scale)(float* x, int64_t n, float factor);

  // ---- data ----
  // *count = points of (N, 4) xyzi inside the cost range (kernels/common/points.hpp).
  void (*count_in_cost_range)(const float* xyzi, int64_t n, int64_t* count);

  // ---- BatchNorm with its ReLU fused in (training; ops::batchnorm_relu_*) ----
  void (*batchnorm_relu_apply)(const float* x, const float* mean, const float* invstd, const float* gamma,
                               const float* beta, float* y, const ops::BatchNormShape& s);
  void (*batchnorm_relu_backward_sums)(const float* x, const float* dy, const float* mean, const float* invstd,
                                       const float* gamma, const float* beta, const ops::BatchNormShape& s,
                                       double* sums);
  void (*batchnorm_relu_backward_apply)(const float* x, const float* dy, const float* mean, const float* invstd,
                                        const float* gamma, const float* beta, const double* sums, double count,
                                        float* dx, float* dgamma, float* dbeta, const ops::BatchNormShape& s);

  // ---- inference with BatchNorm folded into the weights (a frozen model; kernels/cpu/ops.hpp) ----
  // y = relu(op(x) + bias), in one pass over the output where the backend can.
  void (*linear_relu_forward)(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                              int out);
  void (*conv2d_relu_forward)(const float* x, const float* weight, const float* bias, float* y,
                              const ops::Conv2dShape& s);
  void (*conv_transpose_relu_forward)(const float* x, const float* weight, const float* bias, float* y,
                                      const ops::ConvTransposeShape& s);
  // semseg's last BEV convolution at the occupied cells, and devoxelize + concat + head
  // (ops::conv2d_relu_at_cells, ops::devoxelize_head_forward).
  void (*conv2d_relu_at_cells)(const float* x, const float* weight, const float* bias, const ops::Conv2dShape& s,
                               const ops::CellIndexView& index, float* rows);
  void (*devoxelize_head_forward)(const float* cell_features, const ops::CellIndexView& index,
                                  const float* point_features, const float* w1, const float* b1, const float* w2,
                                  const float* b2, const ops::PointHeadShape& s, float* logits);
  // A point layer and voxelize in one pass (ops::linear_relu_voxelize_max_forward; y may be null).
  void (*linear_relu_voxelize_max_forward)(const float* x, const float* weight, const float* bias, float* y,
                                           int64_t rows, int in, int out, const ops::CellIndexView& index,
                                           int64_t cells_per_map, float* grid);
};

const Backend& cpu_backend();
// The CUDA kernels on the current GPU; null when the build has no CUDA or no device is usable.
const Backend* cuda_backend();

}  // namespace lt
