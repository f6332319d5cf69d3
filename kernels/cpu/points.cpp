// The CPU's points ops (kernels/cpu/ops.hpp; the CUDA side: kernels/cuda/points.cu).
#include "kernels/cpu/points.hpp"

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/common/elementwise.hpp"
#include "kernels/common/points.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/ops_common.hpp"
#include "kernels/cpu/skinny.hpp"

namespace lt::ops {

// ---- points <-> BEV cells -------------------------------------------------------------------

CellIndex build_cell_index(std::vector<int64_t> point_cell, int64_t num_cells) {
  CellIndex index;
  index.num_points = int64_t(point_cell.size());
  index.num_cells = num_cells;
  index.point_cell = std::move(point_cell);
  // Counting sort by cell: stable, so points keep their order within a cell.
  std::vector<int64_t> count(size_t(num_cells) + 1, 0);
  for (int64_t cell : index.point_cell)
    if (cell >= 0) count[size_t(cell) + 1] += 1;
  std::vector<int64_t> slot_of_cell(size_t(num_cells), -1);
  index.cell_start.push_back(0);
  for (int64_t cell = 0; cell < num_cells; ++cell) {
    if (count[size_t(cell) + 1] == 0) continue;
    slot_of_cell[size_t(cell)] = int64_t(index.cells.size());
    index.cells.push_back(cell);
    index.cell_start.push_back(index.cell_start.back() + count[size_t(cell) + 1]);
  }
  index.sorted_points.resize(size_t(index.cell_start.back()));
  index.point_slot.assign(size_t(index.num_points), -1);
  std::vector<int64_t> next(index.cell_start.begin(), index.cell_start.end() - 1);
  for (int64_t p = 0; p < index.num_points; ++p) {
    const int64_t cell = index.point_cell[size_t(p)];
    if (cell < 0) continue;
    const int64_t m = slot_of_cell[size_t(cell)];
    index.point_slot[size_t(p)] = m;
    index.sorted_points[size_t(next[size_t(m)]++)] = p;
  }
  return index;
}

namespace {

// Moving between the occupied cells' rows (M, C) and the (B, C, H, W) grid, whose cells are numbered
// b·HW + hw. Channels go in blocks of 16 (one cache line of floats), occupied cells in ascending
// order, so both sides are read and written in near-sequential order.
constexpr int kChannelBlock = 16;

// to_grid: grid[cell, c] = rows[m, c]; otherwise rows[m, c] = grid[cell, c].
template <bool to_grid, class Rows, class Grid>
void move_cell_rows(Rows* rows, const CellIndexView& index, int channels, int64_t cells_per_map, Grid* grid) {
  const int64_t occupied = index.occupied;
  const int blocks = (channels + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static)
  for (int block = 0; block < blocks; ++block) {
    const int c0 = block * kChannelBlock, c1 = std::min(channels, c0 + kChannelBlock);
    for (int64_t m = 0; m < occupied; ++m) {
      const int64_t cell = index.cells[size_t(m)];
      Grid* base = grid + (cell / cells_per_map) * channels * cells_per_map + cell % cells_per_map;
      for (int c = c0; c < c1; ++c) {
        if constexpr (to_grid)
          base[c * cells_per_map] = rows[m * channels + c];
        else
          rows[m * channels + c] = base[c * cells_per_map];
      }
    }
  }
}

template <class T>
void rows_to_grid(const T* rows, const CellIndexView& index, int channels, int64_t cells_per_map, T* grid) {
  move_cell_rows<true>(rows, index, channels, cells_per_map, grid);
}

template <class T>
void grid_to_rows(const T* grid, const CellIndexView& index, int channels, int64_t cells_per_map, T* rows) {
  move_cell_rows<false>(rows, index, channels, cells_per_map, grid);
}

}  // namespace

template <class T>
void voxelize_max_forward(const T* features, const CellIndexView& index, int channels, int64_t cells_per_map, T* grid,
                          int64_t* argmax) {
  const int64_t occupied = index.occupied;
  std::vector<T> cell_max(size_t(occupied * channels));
  // Points are streamed in their own order (the features are the big array) into per-cell running
  // maxima (the small one); threads split the channels, so no two threads touch the same value.
  const int channel_blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  const int blocks = std::min(channel_blocks, omp_get_max_threads());
#pragma omp parallel for schedule(static)
  for (int block = 0; block < blocks; ++block) {
    const int c0 = kChannelBlock * (channel_blocks * block / blocks);
    const int c1 = std::min(channels, kChannelBlock * (channel_blocks * (block + 1) / blocks));
    for (int64_t m = 0; m < occupied; ++m) {  // the first point of each cell starts its maxima
      const int64_t p0 = index.sorted_points[size_t(index.cell_start[size_t(m)])];
      for (int c = c0; c < c1; ++c) {
        cell_max[size_t(m * channels + c)] = features[p0 * channels + c];
        argmax[m * channels + c] = p0;
      }
    }
    for (int64_t p = 0; p < index.num_points; ++p) {
      const int64_t m = index.point_slot[size_t(p)];
      if (m < 0) continue;
      const T* row = features + p * channels;
      T* best_value = &cell_max[size_t(m * channels)];
      int64_t* best = argmax + m * channels;
      for (int c = c0; c < c1; ++c) {                 // branch-free so that it vectorizes
        const bool greater = row[c] > best_value[c];  // strictly: the first point wins ties
        best_value[c] = greater ? row[c] : best_value[c];
        best[c] = greater ? p : best[c];
      }
    }
  }
  std::fill(grid, grid + index.num_cells * channels, T(0));
  rows_to_grid(cell_max.data(), index, channels, cells_per_map, grid);
}

template <class T>
void linear_relu_voxelize_max_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out,
                                      const CellIndexView& index, int64_t cells_per_map, T* grid) {
  const int64_t occupied = index.occupied;
  if constexpr (std::is_same_v<T, float>) {
    if (skinny(in, out)) {
      const SkinnyWeights weights = SkinnyWeights::transposed(weight, bias, out, in);
      // Running maxima per thread (threads take row blocks, so they share cells), merged after.
      const int threads = omp_get_max_threads();
      const int64_t per_thread = occupied * out;
      std::vector<float> cell_max(size_t(threads * per_thread), -std::numeric_limits<float>::infinity());
      const int64_t blocks = (rows + kPointBlock - 1) / kPointBlock;
#pragma omp parallel
      {
        float* mine = cell_max.data() + omp_get_thread_num() * per_thread;
#pragma omp for schedule(static)
        for (int64_t block = 0; block < blocks; ++block)
          skinny_rows(x, block * kPointBlock, std::min(rows, (block + 1) * kPointBlock), weights,
                      [&](int64_t r, const float* acc) {
                        const int64_t m = index.point_slot[size_t(r)];
                        float* row = y ? y + r * out : nullptr;
                        float* best = m >= 0 ? mine + m * out : nullptr;
                        for (int o = 0; o < out; ++o) {
                          const float v = std::max(acc[o], 0.f);
                          if (row) row[o] = v;
                          if (best) best[o] = v > best[o] ? v : best[o];
                        }
                      });
#pragma omp for schedule(static)
        for (int64_t i = 0; i < per_thread; ++i)
          for (int t = 1; t < threads; ++t)
            cell_max[size_t(i)] = std::max(cell_max[size_t(i)], cell_max[size_t(t * per_thread + i)]);
      }
      std::fill(grid, grid + index.num_cells * out, 0.f);
      rows_to_grid(cell_max.data(), index, out, cells_per_map, grid);
      return;
    }
  }
  std::vector<T> scratch(y ? 0 : size_t(rows * out));
  T* point_out = y ? y : scratch.data();
  linear_relu_forward(x, weight, bias, point_out, rows, in, out);
  std::vector<int64_t> argmax(size_t(occupied * out));
  voxelize_max_forward(point_out, index, out, cells_per_map, grid, argmax.data());
}

template <class T>
void voxelize_max_backward(const T* dgrid, const CellIndexView& index, const int64_t* argmax, int channels,
                           int64_t cells_per_map, T* dfeatures) {
  const int64_t occupied = index.occupied;
  std::vector<T> dcell(size_t(occupied * channels));
  grid_to_rows(dgrid, index, channels, cells_per_map, dcell.data());
  // A point belongs to one cell, so no two cells write the same (point, channel): no races.
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < occupied; ++m)
    for (int c = 0; c < channels; ++c)
      dfeatures[argmax[m * channels + c] * channels + c] += dcell[size_t(m * channels + c)];
}

template <class T>
void scatter_mean_forward(const T* features, const CellIndexView& index, int channels, T* mean) {
  const int64_t occupied = index.occupied;
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < occupied; ++m) {
    const int64_t first = index.cell_start[size_t(m)], last = index.cell_start[size_t(m) + 1];
    for (int c = 0; c < channels; ++c) {
      double sum = 0;
      for (int64_t k = first; k < last; ++k) sum += double(features[index.sorted_points[size_t(k)] * channels + c]);
      mean[m * channels + c] = T(sum / double(last - first));
    }
  }
}

template <class T>
void scatter_mean_backward(const T* dmean, const CellIndexView& index, int channels, T* dfeatures) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < index.num_points; ++p) {
    const int64_t m = index.point_slot[size_t(p)];
    if (m < 0) continue;
    const T scale = T(1) / T(index.cell_start[size_t(m) + 1] - index.cell_start[size_t(m)]);
    for (int c = 0; c < channels; ++c) dfeatures[p * channels + c] += dmean[m * channels + c] * scale;
  }
}

template <class T>
void devoxelize_forward(const T* grid, const CellIndexView& index, int channels, int64_t cells_per_map, T* features) {
  std::vector<T> cell_rows(size_t(index.occupied * channels));
  grid_to_rows(grid, index, channels, cells_per_map, cell_rows.data());
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < index.num_points; ++p) {
    const int64_t m = index.point_slot[size_t(p)];
    if (m < 0)
      std::fill(features + p * channels, features + (p + 1) * channels, T(0));
    else
      std::memcpy(features + p * channels, &cell_rows[size_t(m * channels)], sizeof(T) * channels);
  }
}

template <class T>
void devoxelize_backward(const T* dfeatures, const CellIndexView& index, int channels, int64_t cells_per_map,
                         T* dgrid) {
  const int64_t occupied = index.occupied;
  std::vector<T> cell_sums(size_t(occupied * channels), T(0));
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < occupied; ++m) {
    T* sum = &cell_sums[size_t(m * channels)];
    for (int64_t k = index.cell_start[size_t(m)]; k < index.cell_start[size_t(m) + 1]; ++k) {
      const T* row = dfeatures + index.sorted_points[size_t(k)] * channels;
      for (int c = 0; c < channels; ++c) sum[c] += row[c];
    }
  }
  // dgrid += the sums, through rows of what dgrid held.
  std::vector<T> current(size_t(occupied * channels));
  grid_to_rows(dgrid, index, channels, cells_per_map, current.data());
  for (size_t i = 0; i < current.size(); ++i) current[i] += cell_sums[i];
  rows_to_grid(current.data(), index, channels, cells_per_map, dgrid);
}

template <class T>
void devoxelize_head_forward(const T* cell_features, const CellIndexView& index, const T* point_features, const T* w1,
                             const T* b1, const T* w2, const T* b2, const PointHeadShape& s, T* logits) {
  const int cg = s.grid_channels, cp = s.point_channels, hidden = s.hidden, classes = s.classes;
  if constexpr (std::is_same_v<T, float>) {
    if (skinny(cg, hidden) && skinny(cp, hidden) && skinny(hidden, classes)) {
      std::vector<float> w1_grid(size_t(hidden) * cg), w1_point(size_t(hidden) * cp);
      for (int j = 0; j < hidden; ++j) {
        std::copy(w1 + int64_t(j) * (cg + cp), w1 + int64_t(j) * (cg + cp) + cg, &w1_grid[size_t(j) * cg]);
        std::copy(w1 + int64_t(j) * (cg + cp) + cg, w1 + int64_t(j + 1) * (cg + cp), &w1_point[size_t(j) * cp]);
      }
      const int64_t occupied = index.occupied, points = index.num_points;
      std::vector<float> cell_hidden(size_t(occupied * hidden));
      skinny_product<false>(cell_features, occupied, SkinnyWeights::transposed(w1_grid.data(), nullptr, hidden, cg),
                            cell_hidden.data());
      const SkinnyWeights first = SkinnyWeights::transposed(w1_point.data(), b1, hidden, cp),
                          second = SkinnyWeights::transposed(w2, b2, classes, hidden);
      const int64_t blocks = (points + kPointBlock - 1) / kPointBlock;
#pragma omp parallel
      {
        std::vector<float> h(size_t(kPointBlock * hidden));
#pragma omp for schedule(static)
        for (int64_t block = 0; block < blocks; ++block) {
          const int64_t p0 = block * kPointBlock, p1 = std::min(points, p0 + kPointBlock);
          skinny_rows(point_features, p0, p1, first, [&](int64_t p, const float* acc) {
            const int64_t m = index.point_slot[size_t(p)];
            float* row = &h[size_t((p - p0) * hidden)];
            if (m >= 0) {
              const float* from_cell = &cell_hidden[size_t(m * hidden)];
              for (int j = 0; j < hidden; ++j) row[j] = std::max(acc[j] + from_cell[j], 0.f);
            } else {
              for (int j = 0; j < hidden; ++j) row[j] = std::max(acc[j], 0.f);
            }
          });
          skinny_rows(h.data(), 0, p1 - p0, second,
                      [&](int64_t r, const float* acc) { std::copy(acc, acc + classes, logits + (p0 + r) * classes); });
        }
      }
      return;
    }
  }
  // w1's two halves as matrices of their own.
  RowMatrix<T> w1_grid(hidden, cg), w1_point(hidden, cp);
  for (int j = 0; j < hidden; ++j) {
    std::copy(w1 + int64_t(j) * (cg + cp), w1 + int64_t(j) * (cg + cp) + cg, &w1_grid(j, 0));
    std::copy(w1 + int64_t(j) * (cg + cp) + cg, w1 + int64_t(j + 1) * (cg + cp), &w1_point(j, 0));
  }
  // The BEV half once per occupied cell.
  const int64_t occupied = index.occupied;
  std::vector<T> cell_hidden(size_t(occupied * hidden));
  const T* cell_rows = cell_features;
  const int64_t cell_blocks = (occupied + kPointBlock - 1) / kPointBlock;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < cell_blocks; ++block) {
    const int64_t m0 = block * kPointBlock, n = std::min(kPointBlock, occupied - m0);
    MatrixMap<T>(cell_hidden.data() + m0 * hidden, n, hidden).noalias() =
        ConstMatrixMap<T>(cell_rows + m0 * cg, n, cg) * w1_grid.transpose();
  }
  ConstMatrixMap<T> W2(w2, classes, hidden);
  const int64_t points = index.num_points, blocks = (points + kPointBlock - 1) / kPointBlock;
#pragma omp parallel
  {
    RowMatrix<T> h(kPointBlock, hidden);
#pragma omp for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t p0 = block * kPointBlock, n = std::min(kPointBlock, points - p0);
      auto hb = h.topRows(n);
      hb.noalias() = ConstMatrixMap<T>(point_features + p0 * cp, n, cp) * w1_point.transpose();
      for (int64_t r = 0; r < n; ++r) {
        const int64_t m = index.point_slot[size_t(p0 + r)];
        const T* from_cell = m >= 0 ? &cell_hidden[size_t(m * hidden)] : nullptr;
        T* row = &h(r, 0);
        for (int j = 0; j < hidden; ++j) row[j] = std::max(row[j] + (from_cell ? from_cell[j] : T(0)) + b1[j], T(0));
      }
      MatrixMap<T> out(logits + p0 * classes, n, classes);
      out.noalias() = hb * W2.transpose();
      out.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b2, classes);
    }
  }
}

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                                                          \
  template void devoxelize_head_forward<T>(const T*, const CellIndexView&, const T*, const T*, const T*, const T*, \
                                           const T*, const PointHeadShape&, T*);                                   \
  template void voxelize_max_forward<T>(const T*, const CellIndexView&, int, int64_t, T*, int64_t*);               \
  template void voxelize_max_backward<T>(const T*, const CellIndexView&, const int64_t*, int, int64_t, T*);        \
  template void linear_relu_voxelize_max_forward<T>(const T*, const T*, const T*, T*, int64_t, int, int,           \
                                                    const CellIndexView&, int64_t, T*);                            \
  template void scatter_mean_forward<T>(const T*, const CellIndexView&, int, T*);                                  \
  template void scatter_mean_backward<T>(const T*, const CellIndexView&, int, T*);                                 \
  template void devoxelize_forward<T>(const T*, const CellIndexView&, int, int64_t, T*);                           \
  template void devoxelize_backward<T>(const T*, const CellIndexView&, int, int64_t, T*);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops

namespace lt {

int64_t count_points_in_cost_range(const float* xyzi, int64_t num_points) {
  int64_t count = 0;  // integer sum: the order does not change the result
#pragma omp parallel for reduction(+ : count) schedule(static)
  for (int64_t i = 0; i < num_points; ++i) {
    const float* p = xyzi + 4 * i;
    count += point_in_cost_range(p[0], p[1], p[2]) ? 1 : 0;
  }
  return count;
}

}  // namespace lt
