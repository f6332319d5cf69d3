// Points <-> BEV cells on the GPU, through the cell index the loader builds (kernels/cpu/ops.hpp
// CellIndex, uploaded): voxelize by scatter-max with arg-max, scatter-mean, devoxelize by gather, and the
// cost-range count. Every result is independent of the thread schedule: the maxima through a float
// atomicMax (max is order-free), the arg-max as the smallest winning point index (atomicMin, the first
// point on ties, as the CPU), and every sum over a cell's points in the index's point order.
#include "kernels/common/points.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {
namespace {

constexpr unsigned long long kNoPoint = 0x7fffffffffffffffull;

// atomicMax for floats on the integer atomics: non-negative floats order as their int bits, negative
// ones reversed as their unsigned bits (the sign bit decides, so −0 takes the unsigned path).
__device__ inline void atomic_max_float(float* address, float value) {
  if (__float_as_int(value) >= 0)
    atomicMax(reinterpret_cast<int*>(address), __float_as_int(value));
  else
    atomicMin(reinterpret_cast<unsigned*>(address), __float_as_uint(value));
}

__global__ void fill_cell_rows_kernel(float* cell_max, unsigned long long* argmax, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    cell_max[i] = -INFINITY;
    if (argmax) argmax[i] = kNoPoint;
  }
}

// One thread per (point, channel).
__global__ void scatter_max_kernel(const float* features, const int64_t* point_slot, int64_t num_points, int channels,
                                   float* cell_max) {
  const int64_t n = num_points * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = point_slot[e / channels];
    if (m >= 0) atomic_max_float(&cell_max[m * channels + e % channels], features[e]);
  }
}

__global__ void scatter_argmax_kernel(const float* features, const int64_t* point_slot, int64_t num_points,
                                      int channels, const float* cell_max, unsigned long long* argmax) {
  const int64_t n = num_points * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e / channels, m = point_slot[p];
    if (m < 0) continue;
    const int64_t k = m * channels + e % channels;
    if (features[e] == cell_max[k]) atomicMin(&argmax[k], (unsigned long long)p);
  }
}

// One thread per (occupied cell, channel): to_grid grid[cell, c] = rows[m, c], else the other way.
__global__ void move_cell_rows_kernel(float* rows, const int64_t* cells, int64_t occupied, int channels,
                                      int64_t cells_per_map, float* grid, bool to_grid) {
  const int64_t n = occupied * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = e / channels, c = e % channels, cell = cells[m];
    float* g = grid + (cell / cells_per_map * channels + c) * cells_per_map + cell % cells_per_map;
    if (to_grid)
      *g = rows[e];
    else
      rows[e] = *g;
  }
}

__global__ void voxelize_max_backward_kernel(const float* dcell, const int64_t* argmax, int64_t occupied, int channels,
                                             float* dfeatures) {
  const int64_t n = occupied * channels;
  // A point belongs to one cell: no two threads write the same (point, channel).
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    dfeatures[argmax[e] * channels + e % channels] += dcell[e];
}

__global__ void scatter_mean_forward_kernel(const float* features, const int64_t* cell_start,
                                            const int64_t* sorted_points, int64_t occupied, int channels, float* mean) {
  const int64_t n = occupied * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = e / channels, c = e % channels, first = cell_start[m], last = cell_start[m + 1];
    double sum = 0;
    for (int64_t k = first; k < last; ++k) sum += double(features[sorted_points[k] * channels + c]);
    mean[e] = float(sum / double(last - first));
  }
}

__global__ void scatter_mean_backward_kernel(const float* dmean, const int64_t* point_slot, const int64_t* cell_start,
                                             int64_t num_points, int channels, float* dfeatures) {
  const int64_t n = num_points * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = point_slot[e / channels];
    if (m < 0) continue;
    const float scale = 1.f / float(cell_start[m + 1] - cell_start[m]);
    dfeatures[e] += dmean[m * channels + e % channels] * scale;
  }
}

__global__ void devoxelize_forward_kernel(const float* grid, const int64_t* point_cell, int64_t num_points,
                                          int channels, int64_t cells_per_map, float* features) {
  const int64_t n = num_points * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t cell = point_cell[e / channels], c = e % channels;
    features[e] = cell < 0 ? 0.f : grid[(cell / cells_per_map * channels + c) * cells_per_map + cell % cells_per_map];
  }
}

// dgrid[cell, c] += Σ over the cell's points, in point order (the CPU's order: the same bits).
__global__ void devoxelize_backward_kernel(const float* dfeatures, const int64_t* cells, const int64_t* cell_start,
                                           const int64_t* sorted_points, int64_t occupied, int channels,
                                           int64_t cells_per_map, float* dgrid) {
  const int64_t n = occupied * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = e / channels, c = e % channels, cell = cells[m];
    float sum = 0;
    for (int64_t k = cell_start[m]; k < cell_start[m + 1]; ++k) sum += dfeatures[sorted_points[k] * channels + c];
    float* g = dgrid + (cell / cells_per_map * channels + c) * cells_per_map + cell % cells_per_map;
    *g = *g + sum;
  }
}

// hidden[p, j] = max(hidden[p, j] + cell_hidden[slot of p, j] (0 outside the grid) + b1[j], 0).
__global__ void head_hidden_kernel(float* hidden, const float* cell_hidden, const int64_t* point_slot, const float* b1,
                                   int64_t points, int width) {
  const int64_t n = points * width;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t m = point_slot[e / width];
    const int j = int(e % width);
    const float v = hidden[e] + (m >= 0 ? cell_hidden[m * width + j] : 0.f) + b1[j];
    hidden[e] = v > 0.f ? v : 0.f;
  }
}

// Integer counts: atomics in any order give the exact total.
__global__ void count_in_cost_range_kernel(const float* xyzi, int64_t n, unsigned long long* count) {
  __shared__ unsigned long long block_count;
  if (threadIdx.x == 0) block_count = 0;
  __syncthreads();
  unsigned long long mine = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    mine += point_in_cost_range(xyzi[4 * i], xyzi[4 * i + 1], xyzi[4 * i + 2]) ? 1 : 0;
  atomicAdd(&block_count, mine);
  __syncthreads();
  if (threadIdx.x == 0) atomicAdd(count, block_count);
}

}  // namespace

void voxelize_max_forward(const float* features, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                          float* grid, int64_t* argmax) {
  const int64_t rows = index.occupied * channels;
  fill_zero(grid, sizeof(float) * size_t(index.num_cells) * size_t(channels));
  if (rows == 0) return;
  float* cell_max = static_cast<float*>(scratch(kScratchOp0, sizeof(float) * size_t(rows)));
  auto* best = reinterpret_cast<unsigned long long*>(argmax);
  const int64_t elements = index.num_points * channels;
  LT_LAUNCH(fill_cell_rows_kernel, blocks_for(rows), kThreads, stream())(cell_max, best, rows);
  LT_LAUNCH(scatter_max_kernel, blocks_for(elements), kThreads, stream())
  (features, index.point_slot, index.num_points, channels, cell_max);
  if (best) {  // inference passes none
    LT_LAUNCH(scatter_argmax_kernel, blocks_for(elements), kThreads, stream())
    (features, index.point_slot, index.num_points, channels, cell_max, best);
  }
  LT_LAUNCH(move_cell_rows_kernel, blocks_for(rows), kThreads, stream())
  (cell_max, index.cells, index.occupied, channels, cells_per_map, grid, true);
  check(cudaGetLastError(), "voxelize_max_forward");
}

void voxelize_max_backward(const float* dgrid, const ops::CellIndexView& index, const int64_t* argmax, int channels,
                           int64_t cells_per_map, float* dfeatures) {
  const int64_t rows = index.occupied * channels;
  if (rows == 0) return;
  float* dcell = static_cast<float*>(scratch(kScratchOp0, sizeof(float) * size_t(rows)));
  LT_LAUNCH(move_cell_rows_kernel, blocks_for(rows), kThreads, stream())
  (dcell, index.cells, index.occupied, channels, cells_per_map, const_cast<float*>(dgrid), false);
  LT_LAUNCH(voxelize_max_backward_kernel, blocks_for(rows), kThreads, stream())
  (dcell, argmax, index.occupied, channels, dfeatures);
  check(cudaGetLastError(), "voxelize_max_backward");
}

void scatter_mean_forward(const float* features, const ops::CellIndexView& index, int channels, float* mean) {
  const int64_t rows = index.occupied * channels;
  if (rows == 0) return;
  LT_LAUNCH(scatter_mean_forward_kernel, blocks_for(rows), kThreads, stream())
  (features, index.cell_start, index.sorted_points, index.occupied, channels, mean);
  check(cudaGetLastError(), "scatter_mean_forward");
}

void scatter_mean_backward(const float* dmean, const ops::CellIndexView& index, int channels, float* dfeatures) {
  const int64_t elements = index.num_points * channels;
  if (elements == 0) return;
  LT_LAUNCH(scatter_mean_backward_kernel, blocks_for(elements), kThreads, stream())
  (dmean, index.point_slot, index.cell_start, index.num_points, channels, dfeatures);
  check(cudaGetLastError(), "scatter_mean_backward");
}

void devoxelize_forward(const float* grid, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                        float* features) {
  const int64_t elements = index.num_points * channels;
  if (elements == 0) return;
  LT_LAUNCH(devoxelize_forward_kernel, blocks_for(elements), kThreads, stream())
  (grid, index.point_cell, index.num_points, channels, cells_per_map, features);
  check(cudaGetLastError(), "devoxelize_forward");
}

void devoxelize_backward(const float* dfeatures, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                         float* dgrid) {
  const int64_t rows = index.occupied * channels;
  if (rows == 0) return;
  LT_LAUNCH(devoxelize_backward_kernel, blocks_for(rows), kThreads, stream())
  (dfeatures, index.cells, index.cell_start, index.sorted_points, index.occupied, channels, cells_per_map, dgrid);
  check(cudaGetLastError(), "devoxelize_backward");
}

void count_in_cost_range(const float* xyzi, int64_t n, int64_t* count) {
  fill_zero(count, sizeof(int64_t));
  if (n == 0) return;
  LT_LAUNCH(count_in_cost_range_kernel, blocks_for(n) < 120 ? blocks_for(n) : 120u, kThreads, stream())
  (xyzi, n, reinterpret_cast<unsigned long long*>(count));
  check(cudaGetLastError(), "count_in_cost_range");
}

// The BEV half of w1 once per occupied cell (a GEMM over the cells' rows), the point half per point,
// then the ReLU and the classes' GEMM.
void devoxelize_head_forward(const float* cell_features, const ops::CellIndexView& index, const float* point_features,
                             const float* w1, const float* b1, const float* w2, const float* b2,
                             const ops::PointHeadShape& s, float* logits) {
  const int64_t points = index.num_points, occupied = index.occupied;
  if (points == 0) return;
  const int cg = s.grid_channels, cp = s.point_channels, hidden = s.hidden;
  float* w1_grid = static_cast<float*>(scratch(kScratchOp0, sizeof(float) * size_t(hidden) * size_t(cg + cp)));
  float* w1_point = w1_grid + int64_t(hidden) * cg;
  split_channels(w1, cg, cp, hidden, 1, w1_grid, w1_point);
  float* cell_hidden = static_cast<float*>(scratch(kScratchOp1, sizeof(float) * size_t(occupied) * size_t(hidden) + 1));
  if (occupied > 0) gemm(false, true, occupied, hidden, cg, 1.f, cell_features, w1_grid, 0.f, cell_hidden);
  float* point_hidden = static_cast<float*>(scratch(kScratchOp2, sizeof(float) * size_t(points) * size_t(hidden)));
  gemm(false, true, points, hidden, cp, 1.f, point_features, w1_point, 0.f, point_hidden);
  LT_LAUNCH(head_hidden_kernel, blocks_for(points * hidden), kThreads, stream())
  (point_hidden, cell_hidden, index.point_slot, b1, points, hidden);
  linear_forward(point_hidden, w2, b2, logits, points, hidden, s.classes);
  check(cudaGetLastError(), "devoxelize_head_forward");
}

// The point layer (cuBLAS and the bias+ReLU kernel), then the max without its arg-max: two passes where the
// CPU makes one, the same grid.
void linear_relu_voxelize_max_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows,
                                      int in, int out, const ops::CellIndexView& index, int64_t cells_per_map,
                                      float* grid) {
  // sum_doubles' slot: neither op below sums doubles, and both may use the op slots.
  float* point_out = y ? y : static_cast<float*>(scratch(kScratchSums, sizeof(float) * size_t(rows) * size_t(out) + 1));
  linear_relu_forward(x, weight, bias, point_out, rows, in, out);
  voxelize_max_forward(point_out, index, out, cells_per_map, grid, nullptr);
  check(cudaGetLastError(), "linear_relu_voxelize_max_forward");
}

}  // namespace lt::LT_CUDA_NS
