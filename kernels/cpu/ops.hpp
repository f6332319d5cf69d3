#pragma once
// The layers' math on the CPU (DESIGN.md §6): one function per op and direction, on raw arrays, for
// T = float (training) and T = double (the finite-difference gradient tests).
//
// Layouts follow PyTorch: point features (N, C) row-major; BEV maps (B, C, H, W); linear weights
// (out, in); conv weights (out, in, k, k); conv-transpose weights (in, out, k, k).
// Invariants, for every op:
// - parameter gradients accumulate (+=), input gradients are overwritten (=) unless the name says add;
// - reductions run in a fixed order (fixed chunks, channels in parallel, chunks summed in order), so
//   the same inputs and thread count give bit-identical results; no float atomics anywhere.
#include <cstdint>
#include <vector>

#include "kernels/common/hd.hpp"

namespace lt::ops {

// ---- linear: y = x Wᵀ + b --------------------------------------------------------------------
template <class T>
void linear_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out);
// dx may be null (no input gradient wanted).
template <class T>
void linear_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, T* dbias, int64_t rows, int in,
                     int out);

// y = relu(x Wᵀ + b): the point MLPs' layers with BatchNorm folded into W and b (inference). Row blocks
// of 256: each block's GEMM output gets its bias and ReLU while it is still in cache.
template <class T>
void linear_relu_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out);

// ---- conv2d: square kernel 1 or 3, stride 1 or 2, zero padding ------------------------------
struct Conv2dShape {
  int batch, in_channels, out_channels, height, width, kernel, stride, padding;
  // x holds the matmul precision's 16-bit type (a GPU under bf16/fp16: the layer before wrote it so, as the
  // convolution reads it anyway); the CPU has fp32 only.
  bool x_narrow = false;
  // LT_HD: the CUDA kernels compute them too.
  LT_HD int out_height() const { return (height + 2 * padding - kernel) / stride + 1; }
  LT_HD int out_width() const { return (width + 2 * padding - kernel) / stride + 1; }
  int64_t macs() const {
    return int64_t(batch) * out_channels * out_height() * out_width() * in_channels * kernel * kernel;
  }
};
// `workspace` holds the im2col matrix (resized as needed; reuse it across calls).
template <class T>
void conv2d_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s, std::vector<T>& workspace);
// y = relu(conv(x) + bias): a conv with BatchNorm folded into it (inference); bias and ReLU applied per
// im2col (or Winograd) tile while it is in cache.
template <class T>
void conv2d_relu_forward(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                         std::vector<T>& workspace);
// Whether conv2d_forward takes the Winograd F(2×2, 3×3) path: 3×3, stride 1, padding 1, at least 8 input
// and output channels (below that the transforms cost more than the 2.25× fewer multiplications save).
bool conv2d_uses_winograd(const Conv2dShape& s);
// conv2d_forward's im2col + GEMM path whatever the shape (bench_ops compares the two paths with it).
template <class T>
void conv2d_forward_im2col(const T* x, const T* weight, const T* bias, T* y, const Conv2dShape& s,
                           std::vector<T>& workspace);
template <class T>
void conv2d_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, T* dbias, const Conv2dShape& s,
                     std::vector<T>& workspace);

// ---- conv-transpose, kernel = stride = k (1, 2, 4, …): (B, in, H, W) -> (B, out, kH, kW) ---------------
// Every input pixel owns the k×k block it scatters into (no overlap): the upsampling of U-Net decoders
// (k 2) and of the PointPillars/SECOND neck (k 1, 2, 4).
struct ConvTransposeShape {
  int batch, in_channels, out_channels, height, width, stride;
  bool x_narrow = false;  // as Conv2dShape's
  int64_t macs() const { return int64_t(batch) * in_channels * out_channels * stride * stride * height * width; }
};
template <class T>
void conv_transpose_forward(const T* x, const T* weight, const T* bias, T* y, const ConvTransposeShape& s,
                            std::vector<T>& workspace);
template <class T>
void conv_transpose_relu_forward(const T* x, const T* weight, const T* bias, T* y, const ConvTransposeShape& s,
                                 std::vector<T>& workspace);
template <class T>
void conv_transpose_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, T* dbias,
                             const ConvTransposeShape& s, std::vector<T>& workspace);

// ---- batch norm over (outer, C, inner): points are (N, C, 1), maps (B, C, H·W) ------------------
// Split into per-channel sums and their application, so that SyncBN can all-reduce the sums between.
struct BatchNormShape {
  int64_t outer;
  int channels;
  int64_t inner;
  // batchnorm_relu_apply writes y in the matmul precision's 16-bit type (a GPU under bf16/fp16: y is read
  // by convolutions only, which read that type); the CPU has fp32 only.
  bool y_narrow = false;
  int64_t count() const { return outer * inner; }  // elements per channel
};
// BatchNorm's sums are 2C + 1 doubles: two per channel, then the element count per channel, which
// travels with them (SyncBN sums all 2C + 1 over ranks, so the count over all ranks is there too, in the
// backend's memory; the ops below read it from there).
// sums[c] = Σ x, sums[C + c] = Σ x² over channel c (fixed order), sums[2C] = s.count().
template <class T>
void batchnorm_sums(const T* x, const BatchNormShape& s, double* sums);
// y = gamma (x - mean) invstd + beta, per channel.
template <class T>
void batchnorm_apply(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, T* y,
                     const BatchNormShape& s);
// sums[c] = Σ dy, sums[C + c] = Σ dy·x̂ (fixed order); sums[2C], the forward's count, left as it is.
template <class T>
void batchnorm_backward_sums(const T* x, const T* dy, const T* mean, const T* invstd, const BatchNormShape& s,
                             double* sums);
// dx (training mode, batch statistics; sums[2C] elements per channel over all ranks); dgamma, dbeta +=
// the sums. dx, or dgamma and dbeta, may be null (SyncBN: the parameter gradients take this rank's sums,
// dx the sums over all ranks).
template <class T>
void batchnorm_backward_apply(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                              const double* sums, T* dx, T* dgamma, T* dbeta, const BatchNormShape& s);

// BatchNorm followed by ReLU, the ReLU fused in (training): y = max(bn(x), 0); backward from dy at y, the
// ReLU's mask recomputed from x (bn(x) > 0, the same float expression as forward), so neither the ReLU's
// output pass nor its gradient pass is made. Same contracts as the three ops above.
template <class T>
void batchnorm_relu_apply(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, T* y,
                          const BatchNormShape& s);
template <class T>
void batchnorm_relu_backward_sums(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                                  const T* beta, const BatchNormShape& s, double* sums);
template <class T>
void batchnorm_relu_backward_apply(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                                   const T* beta, const double* sums, T* dx, T* dgamma, T* dbeta,
                                   const BatchNormShape& s);

// ---- element-wise and layout ------------------------------------------------------------------
template <class T>
void relu_forward(const T* x, T* y, int64_t n);
template <class T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n);
// Channel concat of (outer, Ca, inner) and (outer, Cb, inner) into (outer, Ca + Cb, inner), and its inverse.
template <class T>
void concat_channels(const T* a, int ca, const T* b, int cb, int64_t outer, int64_t inner, T* out);
template <class T>
void split_channels(const T* in, int ca, int cb, int64_t outer, int64_t inner, T* a, T* b);

// ---- points <-> BEV cells -------------------------------------------------------------------
// Points grouped by cell, built once per batch from each point's flat cell index b·H·W + y·W + x
// (-1: outside the grid).
// A CellIndex's arrays wherever they live (host memory here; a device's for kernels/cuda): what the
// ops read.
struct CellIndexView {
  int64_t num_points = 0, num_cells = 0, occupied = 0;
  const int64_t* point_cell = nullptr;     // (N)
  const int64_t* cells = nullptr;          // (M)
  const int64_t* cell_start = nullptr;     // (M + 1)
  const int64_t* sorted_points = nullptr;  // (cell_start[M])
  const int64_t* point_slot = nullptr;     // (N)
};
struct CellIndex {
  int64_t num_points = 0;
  int64_t num_cells = 0;               // B·H·W
  std::vector<int64_t> point_cell;     // (N)
  std::vector<int64_t> cells;          // (M) occupied cells, ascending
  std::vector<int64_t> cell_start;     // (M+1) into sorted_points
  std::vector<int64_t> sorted_points;  // points by cell, in point order within a cell
  std::vector<int64_t> point_slot;     // (N) the occupied-cell number m of each point, or -1
  int64_t occupied() const { return int64_t(cells.size()); }
  operator CellIndexView() const {
    return {num_points,   num_cells,         occupied(),           point_cell.data(),
            cells.data(), cell_start.data(), sorted_points.data(), point_slot.data()};
  }
};
CellIndex build_cell_index(std::vector<int64_t> point_cell, int64_t num_cells);

// grid (B, C, H, W): each occupied cell's channel-wise max over its points, 0 in empty cells;
// argmax (M, C) keeps the winning point (the first one on ties) for backward.
template <class T>
void voxelize_max_forward(const T* features, const CellIndexView& index, int channels, int64_t cells_per_map, T* grid,
                          int64_t* argmax);
// dfeatures += dgrid routed to each cell's arg-max point.
template <class T>
void voxelize_max_backward(const T* dgrid, const CellIndexView& index, const int64_t* argmax, int channels,
                           int64_t cells_per_map, T* dfeatures);
// mean (M, C): each occupied cell's mean over its points.
template <class T>
void scatter_mean_forward(const T* features, const CellIndexView& index, int channels, T* mean);
template <class T>
void scatter_mean_backward(const T* dmean, const CellIndexView& index, int channels, T* dfeatures);
// features (N, C): each point's cell of grid (B, C, H, W); 0 for points outside the grid.
template <class T>
void devoxelize_forward(const T* grid, const CellIndexView& index, int channels, int64_t cells_per_map, T* features);
// dgrid += Σ over each cell's points of dfeatures (cell by cell, points in order).
template <class T>
void devoxelize_backward(const T* dfeatures, const CellIndexView& index, int channels, int64_t cells_per_map, T* dgrid);

// semseg's inference head with devoxelize and concat fused in (BatchNorm folded into w1, b1):
//   logits[p] = w2 · relu(w1 · [BEV feature of p's cell (0 outside the grid), point_features[p]] + b1) + b2
// for cell_features (M, Cg) (each occupied cell's BEV feature, in the index's order), point_features
// (N, Cp), w1 (hidden, Cg + Cp), w2 (classes, hidden). The BEV half of w1 is applied once per occupied
// cell (M ≤ N rows), not once per point, and the concatenated (N, Cg + Cp) features are never made.
struct PointHeadShape {
  int grid_channels, point_channels, hidden, classes;
};
template <class T>
void devoxelize_head_forward(const T* cell_features, const CellIndexView& index, const T* point_features, const T* w1,
                             const T* b1, const T* w2, const T* b2, const PointHeadShape& s, T* logits);
// rows (M, O) = relu(conv(x) + bias) at the index's occupied cells only (cell b·Ho·Wo + oy·Wo + ox of the
// output map): semseg's last BEV convolution, whose output only the points read (inference: the cells no
// point falls in are never computed). The cells' patches (M, k·k·C), read from a channels-last copy of x, are
// gathered in blocks, then one GEMM.
template <class T>
void conv2d_relu_at_cells(const T* x, const T* weight, const T* bias, const Conv2dShape& s, const CellIndexView& index,
                          T* rows);

// Point layer + voxelize in one pass (inference, BatchNorm folded into weight and bias):
//   y (N, O) = relu(x (N, I) · weightᵀ + bias) where y is not null (semseg's head reads it; bevdet's does
//   not), and grid (B, O, H, W) = each occupied cell's channel-wise max of its points' y, 0 elsewhere.
// Each row goes into its cell's running max while it is still in registers: the (N, O) output is not read
// back, and not written at all for y null. The same grid as linear_relu_forward then voxelize_max_forward
// (a max is exact in any order, so also for any thread count).
template <class T>
void linear_relu_voxelize_max_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out,
                                      const CellIndexView& index, int64_t cells_per_map, T* grid);

// ---- loss -------------------------------------------------------------------------------
// Cross-entropy of logits (N, K) against labels, points labelled `ignore_label` left out, weighted
// mean as torch.nn.CrossEntropyLoss(weight, ignore_index). Returns the loss; writes dlogits (if not
// null) = d loss / d logits. class_weights (K) may be null (all 1). Zero counted points: loss 0.
template <class T>
double cross_entropy(const T* logits, const uint8_t* labels, int64_t rows, int classes, const T* class_weights,
                     int ignore_label, T* dlogits);

// ---- detection (CenterPoint) ---------------------------------------------------------------------
// Focal loss (focal_loss_element) of heatmap logits against their Gaussian targets, summed over the n
// elements in a fixed order (normalising by the object count is the caller's). dlogits (if not null)
// = d sum / d logits.
template <class T>
double focal_loss(const T* logits, const T* targets, int64_t n, T* dlogits);
// rows (K, C) = maps (B, C, plane) at K positions b·plane + hw (the regression outputs at object centres).
template <class T>
void gather_positions_forward(const T* maps, const int64_t* positions, int64_t k, int channels, int64_t plane, T* rows);
// dmaps += drows at their positions (in order of k, so repeated positions add up deterministically).
template <class T>
void gather_positions_backward(const T* drows, const int64_t* positions, int64_t k, int channels, int64_t plane,
                               T* dmaps);
// Σ |pred − target| over (rows, C); dpred (if not null) = its gradient.
template <class T>
double l1_loss(const T* pred, const T* target, int64_t rows, int channels, T* dpred);
// 3×3 max pooling, stride 1, padding by −∞ (CenterPoint's peak finding), over `maps` planes of H×W.
template <class T>
void max_pool3x3(const T* x, T* y, int64_t maps, int height, int width);

}  // namespace lt::ops
