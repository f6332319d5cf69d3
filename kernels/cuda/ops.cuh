#pragma once
// The CUDA backend's host functions (one per op of kernels/backend.hpp, same contracts), in
// lt::cuda (nvcc) or lt::cuda_emu (the emulated build). Pointers are device memory.
#include "kernels/backend.hpp"
#include "kernels/cuda/runtime.cuh"

namespace lt::LT_CUDA_NS {

const Backend& backend();

// ---- memory (memory.cu) ----
void* alloc(size_t bytes);
void release(void* pointer);
void upload(void* dst, const void* host_src, size_t bytes);
void download(void* host_dst, const void* src, size_t bytes);
void copy(void* dst, const void* src, size_t bytes);
void fill_zero(void* pointer, size_t bytes);
void synchronize();
TransferLedger transfers();
// Makes device `index` the rank's: current on this thread (cudaSetDevice), and selected by any other host
// thread of ours (the loader's) before its first CUDA call. cuda_select_device calls it.
void select_device(int index);
void* stage_acquire(size_t bytes, char** host_block);
const void* stage_upload(void* slot);
void stage_await(void* slot);
void stage_release(void* slot);
void graph_begin();
void* graph_end();
bool graph_launchable(const void* graph);
bool graph_launch(void* graph);
void graph_release(void* graph);
// Scratch memory for one op's temporaries, by slot: the first three for the op itself, then sum_doubles'
// and gemm's 16-bit operands. A slot's memory is valid until the next request for that slot (ops run in
// stream order, so the next op's use cannot overtake this one's). Grows, never shrinks.
enum ScratchSlot : int { kScratchOp0, kScratchOp1, kScratchOp2, kScratchSums, kScratchGemmA, kScratchGemmB };
constexpr int kScratchSlots = 6;
void* scratch(int slot, size_t bytes);

// ---- reductions (reduce.cu) ----
// *out = Σ values[0..n) in a fixed order (chunks of a fixed size, each by a fixed tree, chunks in order).
void sum_doubles(const double* values, int64_t n, double* out);

// ---- gemm.cu: row-major C (m×n) = α op(A) op(B) + β C (cuBLAS in the GPU build; a plain kernel in the
// emulated one) ----
// With a 16-bit matmul precision, A and B are converted to it first (scratch kScratchGemmA/B) and multiplied
// with fp32 accumulation (cublasGemmEx, compute type 32F; the emulated kernel reads the 16-bit values).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c);
// The same with A and B given already in the matmul precision's type, written so by the kernel that made
// them (the convolutions' im2col: no fp32 copy and no conversion pass); floats in fp32.
void gemm_matmul_ab(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
                    const void* b, float beta, float* c);
// The same, each of A and B narrow (in the matmul precision's type) or floats, as its flag says.
void gemm_narrow(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void* a, bool a_narrow,
                 const void* b, bool b_narrow, float beta, float* c);
// x (n floats) in the matmul precision's type, in scratch `slot` (x itself in fp32): an operand that several
// GEMMs read (a convolution's weight, for every image; its output gradient, by both of an image's GEMMs),
// converted once for all of them.
const void* to_matmul_type(const float* x, int64_t n, ScratchSlot slot);
// Bytes per element of the matmul precision's type: 4 in fp32, else 2.
size_t matmul_bytes();
// Bytes per element of an activation stored narrow (in the matmul precision's type: the shapes' x_narrow,
// y_narrow) or in fp32; narrow under fp32 is a programming error.
size_t activation_bytes(bool narrow);
// v in T as the hardware rounds (to nearest even); T = float keeps it.
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
// v in float (exact for every T).
__device__ __forceinline__ float to_float(float v) {
  return v;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float to_float(__half v) {
  return __half2float(v);
}
void set_matmul_precision(Precision precision);
Precision matmul_precision();
// f(p as T*), T the matmul precision's type (float, __nv_bfloat16 or __half): for the kernels that write (or
// read) an array in it.
template <class F>
void as_matmul_type(void* p, F&& f) {
  switch (matmul_precision()) {
    case Precision::bf16:
      return f(static_cast<__nv_bfloat16*>(p));
    case Precision::fp16:
      return f(static_cast<__half*>(p));
    case Precision::fp32:
      return f(static_cast<float*>(p));
  }
}

// ---- linear.cu ----
void linear_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in, int out);
void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                     int64_t rows, int in, int out);
// BatchNorm folded in (inference): y = relu(x Wᵀ + bias).
void linear_relu_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                         int out);

// ---- conv.cu ----
// Epilogues the layer files share (linear.cu too): y += bias per channel of (outer, C, inner); y = max(y +
// bias, 0); out[c] += Σ of data's channel c (a bias gradient, in a fixed order).
void add_bias(float* y, const float* bias, int64_t outer, int channels, int64_t inner);
void bias_relu(float* y, const float* bias, int64_t outer, int channels, int64_t inner);
void add_channel_sums(const float* data, int64_t outer, int channels, int64_t inner, float* out);
void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s);
void conv2d_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                     const ops::Conv2dShape& s);
void conv_transpose_forward(const float* x, const float* weight, const float* bias, float* y,
                            const ops::ConvTransposeShape& s);
void conv_transpose_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                             float* dbias, const ops::ConvTransposeShape& s);
// BatchNorm folded in (inference): y = relu(op(x) + bias).
void conv2d_relu_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s);
void conv_transpose_relu_forward(const float* x, const float* weight, const float* bias, float* y,
                                 const ops::ConvTransposeShape& s);
// semseg's last BEV convolution at the occupied cells only.
void conv2d_relu_at_cells(const float* x, const float* weight, const float* bias, const ops::Conv2dShape& s,
                          const ops::CellIndexView& index, float* rows);

#if defined(__CUDACC__) && defined(LIDARTRAIN_HAVE_CUDNN)
// ---- cudnn_conv.cu: the same ops' convolutions through cuDNN (bias and its gradient left to the caller);
// false when cuDNN takes no such shape, and nothing was done ----
bool cudnn_conv2d_forward(const float* x, const float* weight, float* y, const ops::Conv2dShape& s);
bool cudnn_conv2d_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                           const ops::Conv2dShape& s);
bool cudnn_conv_transpose_forward(const float* x, const float* weight, float* y, const ops::ConvTransposeShape& s);
bool cudnn_conv_transpose_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                                   const ops::ConvTransposeShape& s);
#endif

// ---- batchnorm.cu ----
void batchnorm_sums(const float* x, const ops::BatchNormShape& s, double* sums);
void batchnorm_stats(const double* sums, int channels, bool training, float* mean, float* invstd, float* running_mean,
                     float* running_var);
void batchnorm_apply(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                     float* y, const ops::BatchNormShape& s);
void batchnorm_backward_sums(const float* x, const float* dy, const float* mean, const float* invstd,
                             const ops::BatchNormShape& s, double* sums);
void batchnorm_backward_apply(const float* x, const float* dy, const float* mean, const float* invstd,
                              const float* gamma, const double* sums, float* dx, float* dgamma, float* dbeta,
                              const ops::BatchNormShape& s);
void batchnorm_relu_apply(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                          float* y, const ops::BatchNormShape& s);
void batchnorm_relu_backward_sums(const float* x, const float* dy, const float* mean, const float* invstd,
                                  const float* gamma, const float* beta, const ops::BatchNormShape& s, double* sums);
void batchnorm_relu_backward_apply(const float* x, const float* dy, const float* mean, const float* invstd,
                                   const float* gamma, const float* beta, const double* sums, float* dx, float* dgamma,
                                   float* dbeta, const ops::BatchNormShape& s);

// ---- elementwise.cu ----
void add(float* y, const float* x, int64_t n);
void relu_forward(const float* x, float* y, int64_t n);
void relu_backward(const float* y, const float* dy, float* dx, int64_t n);
void concat_channels(const float* a, int ca, const float* b, int cb, int64_t outer, int64_t inner, float* out);
void split_channels(const float* in, int ca, int cb, int64_t outer, int64_t inner, float* a, float* b);

// ---- points.cu ----
void voxelize_max_forward(const float* features, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                          float* grid, int64_t* argmax);
void voxelize_max_backward(const float* dgrid, const ops::CellIndexView& index, const int64_t* argmax, int channels,
                           int64_t cells_per_map, float* dfeatures);
void scatter_mean_forward(const float* features, const ops::CellIndexView& index, int channels, float* mean);
void scatter_mean_backward(const float* dmean, const ops::CellIndexView& index, int channels, float* dfeatures);
void devoxelize_forward(const float* grid, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                        float* features);
void devoxelize_backward(const float* dfeatures, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                         float* dgrid);
void count_in_cost_range(const float* xyzi, int64_t n, int64_t* count);
void devoxelize_head_forward(const float* cell_features, const ops::CellIndexView& index, const float* point_features,
                             const float* w1, const float* b1, const float* w2, const float* b2,
                             const ops::PointHeadShape& s, float* logits);
void linear_relu_voxelize_max_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows,
                                      int in, int out, const ops::CellIndexView& index, int64_t cells_per_map,
                                      float* grid);

// ---- losses.cu ----
void cross_entropy(const float* logits, const uint8_t* labels, int64_t rows, int classes, const float* class_weights,
                   int ignore_label, float* dlogits, double* loss);
void focal_loss(const float* logits, const float* targets, int64_t n, float* dlogits, double* loss);
void l1_loss(const float* pred, const float* target, int64_t rows, int channels, float* dpred, double* loss);
void add_loss_share(const double* terms, int count, double weight0, double weight1, double normaliser, double* total);

// ---- detection.cu ----
void gather_positions_forward(const float* maps, const int64_t* positions, int64_t k, int channels, int64_t plane,
                              float* rows);
void gather_positions_backward(const float* drows, const int64_t* positions, int64_t k, int channels, int64_t plane,
                               float* dmaps);
void max_pool3x3(const float* x, float* y, int64_t maps, int height, int width);
void bev_iou_matrix(const float* a, int64_t n, const float* b, int64_t m, double* iou);
void heatmap_top_k(const float* logits, int64_t maps, int height, int width, float threshold, int top_k, int64_t* work,
                   int64_t* cells, float* scores, int64_t* count);
void rotated_nms(const float* boxes, const int32_t* labels, int64_t n, double iou, uint64_t* work, uint8_t* keep);

// ---- optimizer.cu ----
void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const OptimizerStep& step);
void sgd_update(float* param, const float* grad, float* momentum_buffer, int64_t n, const OptimizerStep& step);
void sum_squares(const float* x, int64_t n, double* sum);
void scale(float* x, int64_t n, float factor);
void gradient_gate(const double* norm_sq, const double* loss, double max_norm, float* gate);
void scaled_gradient_gate(double* norm_sq, const double* loss, double max_norm, int64_t growth_interval, double* scaler,
                          float* gate);

}  // namespace lt::LT_CUDA_NS
