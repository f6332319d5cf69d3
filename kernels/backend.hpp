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
//
// Adding an op, e.g. `foo` of the convolutions (an op's CPU and CUDA bodies are found by the same file name):
//   1. kernels/cpu/ops.hpp: its declaration, with what it computes; kernels/cpu/conv.cpp: its body and its
//      instantiation for float and double (the reference, and the finite-difference tests' precision);
//   2. here: its slot in the conv group, and its name in LT_BACKEND_OPS (the static_assert insists);
//   3. kernels/cpu/backend.cpp and kernels/cuda/backend.cu: `.foo = …` in the same place of the group
//      (designated initializers in declaration order: a slot out of place does not compile);
//      kernels/cuda/ops.cuh and kernels/cuda/conv.cu: the kernel (or list "foo" in `unsupported`);
//   4. tests/test_ops.cpp: `LT_CPU_OP(foo)` in Cpu<T>, its cases (written once, k.foo(…) with this table's
//      signature and host arrays as ro/wr/rw) and their line in the table: each runs on the CPU against
//      finite differences and on every backend against the CPU (tests/device_staging.hpp stages any op of
//      LT_BACKEND_OPS, no wrapper to write). A backend's null slot that is not listed as unsupported fails
//      OpTable.EveryOpOfEveryBackendIsSetOrListedUnsupported.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/ops.hpp"

namespace lt {

// One AdamW or SGD step's hyper-parameters for a range of the flat buffers (torch.optim's formulas,
// kernels/common/elementwise.hpp).
struct OptimizerStep {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0, momentum = 0;
  float bias1 = 1, bias2 = 1;  // 1 − β₁ᵗ, 1 − β₂ᵗ
  bool first_step = false;     // SGD: the momentum buffer starts as the gradient
  // Null, or two floats in the backend's memory that gradient_gate wrote: {clip factor, open}. Each
  // gradient is multiplied by the factor first (as clip_to_norm would have scaled it), and a closed gate
  // (open = 0) leaves everything untouched: clipping and the non-finite guard without the host.
  const float* gate = nullptr;
  // Null (weight_decay applies to every element), or one byte per element of the range in the backend's
  // memory: weight_decay applies where it is 1, none where 0 — so one launch covers a flat buffer of
  // tensors with and without decay (BN and biases have none).
  const uint8_t* decays = nullptr;
};

// Scratch int64 that heatmap_top_k needs for `cells` heatmap cells: the peaks' cells and scores, and the
// GPU's per-chunk counts of them (chunks of 4096 cells).
inline int64_t heatmap_top_k_work(int64_t cells) {
  return 2 * cells + cells / 4096 + 2;
}

// What the inputs of a backend's GEMMs are rounded to (train.precision, --precision): fp32 (not rounded),
// bf16 or fp16. Every linear layer and convolution multiplies through GEMMs, so their inputs (activations,
// weights, output gradients) are read in that type; products are accumulated in fp32 and outputs written
// in fp32. The maps that only convolutions read (the BN + ReLU outputs of src/nn/layers.hpp's ConvBnRelu)
// are stored in that type (the ops' x_narrow, y_narrow); everything else — parameters (the master
// weights), optimizer state, BN statistics, losses, gradients and their all-reduce — stays fp32.
enum class Precision { fp32, bf16, fp16 };
inline const char* precision_name(Precision p) {
  return p == Precision::bf16 ? "bf16" : p == Precision::fp16 ? "fp16" : "fp32";
}

// What crossed between the host and a backend's memory since the process began: bytes each way through
// upload/download and staged inputs (counted at the forward that reads them, wherever their copy was
// queued), and the times the host waited for the device (synchronize, and every download, which returns
// only with the data). The CPU backend moves nothing. metrics.jsonl reports a step's difference.
struct TransferLedger {
  int64_t h2d_bytes = 0, d2h_bytes = 0, syncs = 0;
  TransferLedger operator-(const TransferLedger& earlier) const {
    return {h2d_bytes - earlier.h2d_bytes, d2h_bytes - earlier.d2h_bytes, syncs - earlier.syncs};
  }
};

struct Backend {
  const char* name;
  // Its memory is the host's (the CPU): callers may then hand it host arrays without copies. The emulated
  // CUDA build says false although its memory is the host's, so tests go through the copies a GPU needs.
  bool host_memory;
  // The ops this backend does not implement, by name (LT_BACKEND_OPS), null-terminated; their slots are
  // null, and supports_op() says false (ggml's supports_op). Every other slot is set: tests/test_ops.cpp
  // checks both for every backend.
  const char* const* unsupported;

  // ---- memory (kernels/cuda/memory.cu; the CPU's in kernels/cpu/backend.cpp) ----
  void* (*alloc)(size_t bytes);  // null when the memory is not there
  void (*release)(void* pointer);
  void (*upload)(void* dst, const void* host_src, size_t bytes);
  void (*download)(void* host_dst, const void* src, size_t bytes);
  void (*copy)(void* dst, const void* src, size_t bytes);  // within the backend's memory
  void (*fill_zero)(void* pointer, size_t bytes);
  void (*synchronize)();
  TransferLedger (*transfers)();  // the ledger so far
  // Inputs uploaded ahead of their forward (kernels/staged_input.hpp), through staging slots: a slot is a
  // pinned host block and a device block. Any thread (the loader) takes a free slot of at least `bytes` and
  // fills its host block (stage_acquire: no device call, the block's last copy known done); the main thread
  // queues the copy to the device block on the copy stream, after the compute work that last read that
  // block, the host not waiting (stage_upload, returns the device block); forward makes the compute stream
  // wait for the copy (stage_await); once the work reading the block is queued, stage_release gives the
  // slot back. The CPU's slot is a host block, used in place.
  void* (*stage_acquire)(size_t bytes, char** host_block);
  const void* (*stage_upload)(void* slot);
  void (*stage_await)(void* slot);
  void (*stage_release)(void* slot);
  // Graphs (CUDA graphs; memory.cu): the ops' work captured once and queued again as one launch. Between
  // graph_begin and graph_end the ops record their work on the device and run nothing; graph_end returns
  // the recorded graph. graph_launch queues the graph's work again with the pointers and values it was
  // captured with — the caller keeps every buffer the graph uses where it was (Model's graphed sections
  // check the addresses of theirs) — and returns false, queueing nothing, when memory of the backend's own
  // that the graph uses has moved since capture (the ops' scratch grew): the caller captures again. What
  // cannot be captured (allocating device memory, a host wait, a copy from pageable memory) fails with a
  // CUDA error during capture. graph_release frees the graph. CPU: unsupported.
  void (*graph_begin)();
  void* (*graph_end)();
  // Whether graph_launch would queue the graph (the backend's memory it uses is where it was at capture),
  // for a caller that must agree with other ranks on launching it before it does.
  bool (*graph_launchable)(const void* graph);
  bool (*graph_launch)(void* graph);
  void (*graph_release)(void* graph);

  // ---- GEMM (the CPU: Eigen; CUDA: cuBLAS; gemm.cu) ----
  // From now on, every GEMM's inputs as `precision` reads them (the CPU: fp32 only, so unsupported).
  void (*set_matmul_precision)(Precision precision);
  // The precision set (the CPU: fp32). Under bf16/fp16 the layers keep their convolutions' inputs in that
  // type (ops' x_narrow, y_narrow: they are read rounded to it anyway).
  Precision (*matmul_precision)();
  // Row-major C (m×n) = α op(A) op(B) + β C; op(A) = Aᵀ with trans_a (A stored k×m), likewise B.
  void (*gemm)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
               float beta, float* c);

  // ---- linear (linear.cpp, linear.cu) ----
  void (*linear_forward)(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                         int out);
  void (*linear_backward)(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                          int64_t rows, int in, int out);
  // Inference with BatchNorm folded into the weights (a frozen model): y = relu(x Wᵀ + bias) in one pass.
  void (*linear_relu_forward)(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                              int out);

  // ---- convolutions (conv.cpp, conv.cu) ----
  void (*conv2d_forward)(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s);
  void (*conv2d_backward)(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                          const ops::Conv2dShape& s);
  void (*conv_transpose_forward)(const float* x, const float* weight, const float* bias, float* y,
                                 const ops::ConvTransposeShape& s);
  void (*conv_transpose_backward)(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                                  float* dbias, const ops::ConvTransposeShape& s);
  // Inference, BatchNorm folded: y = relu(op(x) + bias), in one pass over the output where the backend can.
  void (*conv2d_relu_forward)(const float* x, const float* weight, const float* bias, float* y,
                              const ops::Conv2dShape& s);
  void (*conv_transpose_relu_forward)(const float* x, const float* weight, const float* bias, float* y,
                                      const ops::ConvTransposeShape& s);
  // semseg's last BEV convolution at the occupied cells only (ops::conv2d_relu_at_cells).
  void (*conv2d_relu_at_cells)(const float* x, const float* weight, const float* bias, const ops::Conv2dShape& s,
                               const ops::CellIndexView& index, float* rows);

  // ---- batch norm: sums (double, 2C + 1: Σ, then the second sum, then the count of elements per channel)
  // in backend memory (batchnorm.cpp, .cu); SyncBN sums all 2C + 1 over ranks where they are, and the ops
  // after read the count from there, so no count crosses to the host ----
  void (*batchnorm_sums)(const float* x, const ops::BatchNormShape& s, double* sums);
  // mean, invstd (C) from the sums over sums[2C] elements, and the running statistics updated; with
  // training false or a count of 0, mean and invstd from the running statistics (batchnorm_statistics).
  void (*batchnorm_stats)(const double* sums, int channels, bool training, float* mean, float* invstd,
                          float* running_mean, float* running_var);
  void (*batchnorm_apply)(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                          float* y, const ops::BatchNormShape& s);
  // Writes sums[0, 2C) and leaves sums[2C] (the forward's count) for batchnorm_backward_apply.
  void (*batchnorm_backward_sums)(const float* x, const float* dy, const float* mean, const float* invstd,
                                  const ops::BatchNormShape& s, double* sums);
  void (*batchnorm_backward_apply)(const float* x, const float* dy, const float* mean, const float* invstd,
                                   const float* gamma, const double* sums, float* dx, float* dgamma, float* dbeta,
                                   const ops::BatchNormShape& s);
  // With its ReLU fused in (training; ops::batchnorm_relu_*).
  void (*batchnorm_relu_apply)(const float* x, const float* mean, const float* invstd, const float* gamma,
                               const float* beta, float* y, const ops::BatchNormShape& s);
  void (*batchnorm_relu_backward_sums)(const float* x, const float* dy, const float* mean, const float* invstd,
                                       const float* gamma, const float* beta, const ops::BatchNormShape& s,
                                       double* sums);
  void (*batchnorm_relu_backward_apply)(const float* x, const float* dy, const float* mean, const float* invstd,
                                        const float* gamma, const float* beta, const double* sums, float* dx,
                                        float* dgamma, float* dbeta, const ops::BatchNormShape& s);

  // ---- element-wise and layout (elementwise.cpp, elementwise.cu) ----
  void (*add)(float* y, const float* x, int64_t n);  // y += x
  void (*relu_forward)(const float* x, float* y, int64_t n);
  void (*relu_backward)(const float* y, const float* dy, float* dx, int64_t n);
  void (*concat_channels)(const float* a, int ca, const float* b, int cb, int64_t outer, int64_t inner, float* out);
  void (*split_channels)(const float* in, int ca, int cb, int64_t outer, int64_t inner, float* a, float* b);

  // ---- points <-> BEV cells (points.cpp, points.cu) ----
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
  // Inference: devoxelize + concat + head (ops::devoxelize_head_forward), and a point layer and voxelize
  // in one pass (ops::linear_relu_voxelize_max_forward; y may be null).
  void (*devoxelize_head_forward)(const float* cell_features, const ops::CellIndexView& index,
                                  const float* point_features, const float* w1, const float* b1, const float* w2,
                                  const float* b2, const ops::PointHeadShape& s, float* logits);
  void (*linear_relu_voxelize_max_forward)(const float* x, const float* weight, const float* bias, float* y,
                                           int64_t rows, int in, int out, const ops::CellIndexView& index,
                                           int64_t cells_per_map, float* grid);
  // *count = points of (N, 4) xyzi inside the cost range (kernels/common/points.hpp).
  void (*count_in_cost_range)(const float* xyzi, int64_t n, int64_t* count);

  // ---- losses: the value to *loss (one double) (losses.cpp, losses.cu) ----
  void (*cross_entropy)(const float* logits, const uint8_t* labels, int64_t rows, int classes,
                        const float* class_weights, int ignore_label, float* dlogits, double* loss);
  void (*focal_loss)(const float* logits, const float* targets, int64_t n, float* dlogits, double* loss);
  void (*l1_loss)(const float* pred, const float* target, int64_t rows, int channels, float* dpred, double* loss);
  // *total += a micro-batch's share of the global batch's loss from its `count` (1 or 2) loss terms:
  // Σ_i (weight_i · terms[i]) / normaliser, in that order (common/elementwise.hpp's loss_share; nothing when
  // normaliser ≤ 0). On a device the share stays there until the step's one read.
  void (*add_loss_share)(const double* terms, int count, double weight0, double weight1, double normaliser,
                         double* total);

  // ---- detection (detection.cpp, detection.cu) ----
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

  // ---- optimizer over a range of the flat buffers (optimizer.cpp, optimizer.cu) ----
  void (*adamw_update)(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                       const OptimizerStep& step);
  void (*sgd_update)(float* param, const float* grad, float* momentum_buffer, int64_t n, const OptimizerStep& step);
  // *sum = Σ x² in double (the gradient norm's square); scale: x *= factor.
  void (*sum_squares)(const float* x, int64_t n, double* sum);
  void (*scale)(float* x, int64_t n, float factor);
  // gate[0], gate[1] = the clip factor and whether the norm √norm_sq and the global loss (null: not
  // looked at) are finite (common/elementwise.hpp's gradient_gate), for OptimizerStep::gate: what lets the
  // update follow the norm and the loss on the device.
  void (*gradient_gate)(const double* norm_sq, const double* loss, double max_norm, float* gate);
  // The same for a loss scaled by scaler[0] (fp16; common/elementwise.hpp's scaled_gradient_gate): norm_sq
  // unscaled in place, gate[0] ÷ the scale, and scaler = {scale, steps since the last overflow} updated
  // (halved on a closed gate, doubled after growth_interval open ones in a row) — on the device, read back
  // with the step's other scalars.
  void (*scaled_gradient_gate)(double* norm_sq, const double* loss, double max_norm, int64_t growth_interval,
                               double* scaler, float* gate);
};

// Every op of the table by name, in declaration order: what the completeness test and supports_op walk,
// and what `unsupported` names. An op declared above and not named here fails the static_assert below.
// clang-format off
#define LT_BACKEND_OPS(X)                                                                                              \
  X(alloc) X(release) X(upload) X(download) X(copy) X(fill_zero) X(synchronize) X(transfers)                          \
  X(stage_acquire) X(stage_upload) X(stage_await) X(stage_release)                                                     \
  X(graph_begin) X(graph_end) X(graph_launchable) X(graph_launch) X(graph_release)                                     \
  X(set_matmul_precision) X(matmul_precision) X(gemm)                                                                 \
  X(linear_forward) X(linear_backward) X(linear_relu_forward)                                                          \
  X(conv2d_forward) X(conv2d_backward) X(conv_transpose_forward) X(conv_transpose_backward) X(conv2d_relu_forward)     \
  X(conv_transpose_relu_forward) X(conv2d_relu_at_cells)                                                               \
  X(batchnorm_sums) X(batchnorm_stats) X(batchnorm_apply) X(batchnorm_backward_sums) X(batchnorm_backward_apply)       \
  X(batchnorm_relu_apply) X(batchnorm_relu_backward_sums) X(batchnorm_relu_backward_apply)                             \
  X(add) X(relu_forward) X(relu_backward) X(concat_channels) X(split_channels)                                         \
  X(voxelize_max_forward) X(voxelize_max_backward) X(scatter_mean_forward) X(scatter_mean_backward)                    \
  X(devoxelize_forward) X(devoxelize_backward) X(devoxelize_head_forward) X(linear_relu_voxelize_max_forward)          \
  X(count_in_cost_range)                                                                                               \
  X(cross_entropy) X(focal_loss) X(l1_loss) X(add_loss_share)                                                          \
  X(gather_positions_forward) X(gather_positions_backward) X(max_pool3x3) X(bev_iou_matrix) X(heatmap_top_k)           \
  X(rotated_nms)                                                                                                       \
  X(adamw_update) X(sgd_update) X(sum_squares) X(scale) X(gradient_gate) X(scaled_gradient_gate)
// clang-format on

#define LT_COUNT_OP(op) +1
inline constexpr int kBackendOps = 0 LT_BACKEND_OPS(LT_COUNT_OP);
#undef LT_COUNT_OP
static_assert(sizeof(Backend) == offsetof(Backend, alloc) + kBackendOps * sizeof(void (*)()),
              "an op of Backend is not named in LT_BACKEND_OPS (or a member that is not an op was added after them)");

// False for an op this backend lists as unsupported (its slot is null); the device test suites skip it.
inline bool supports_op(const Backend& backend, const char* op) {
  for (const char* const* name = backend.unsupported; name && *name; ++name)
    if (std::strcmp(*name, op) == 0) return false;
  return true;
}

const Backend& cpu_backend();
// The CUDA kernels on the current GPU; null when the build has no CUDA or no device is usable.
const Backend* cuda_backend();

}  // namespace lt
