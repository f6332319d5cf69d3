// The detection head's work on the GPU: gathering the regression maps at object centres (and its
// backward), CenterPoint's 3×3 max-pool peak finding, the rotated BEV IoU of box pairs (what NMS and
// matching use; kernels/common/box_iou.hpp, shared with the CPU), and decoding: the top-K heatmap peaks
// and the greedy rotated NMS.
#include "kernels/backend.hpp"
#include "kernels/common/box_iou.hpp"
#include "kernels/common/elementwise.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {
namespace {

__global__ void gather_positions_forward_kernel(const float* maps, const int64_t* positions, int64_t k, int channels,
                                                int64_t plane, float* rows) {
  const int64_t n = k * channels;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / channels, c = e % channels, b = positions[r] / plane, hw = positions[r] % plane;
    rows[e] = maps[(b * channels + c) * plane + hw];
  }
}

// One thread per channel walks the rows in order, so repeated positions add up in the CPU's order.
__global__ void gather_positions_backward_kernel(const float* drows, const int64_t* positions, int64_t k, int channels,
                                                 int64_t plane, float* dmaps) {
  const int c = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= channels) return;
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = positions[r] / plane, hw = positions[r] % plane;
    dmaps[(b * channels + c) * plane + hw] += drows[r * channels + c];
  }
}

__global__ void max_pool3x3_kernel(const float* x, float* y, int64_t maps, int height, int width) {
  const int64_t plane = int64_t(height) * width, n = maps * plane;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const float* in = x + e / plane * plane;
    const int i = int(e % plane / width), j = int(e % width);
    float best = in[int64_t(i) * width + j];
    for (int di = -1; di <= 1; ++di)
      for (int dj = -1; dj <= 1; ++dj) {
        const int a = i + di, b = j + dj;
        if (a >= 0 && a < height && b >= 0 && b < width) best = fmaxf(best, in[int64_t(a) * width + b]);
      }
    y[e] = best;
  }
}

__global__ void bev_iou_kernel(const float* a, int64_t n, const float* b, int64_t m, double* iou) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n * m; k += int64_t(gridDim.x) * blockDim.x)
    iou[k] = bev_iou(a + 7 * (k / m), b + 7 * (k % m));
}

// ---- top-K heatmap peaks: count per chunk, offsets, ordered write, rank ----
// A chunk of kPeakChunk cells is one block; thread t tests cells [t·kPerThread, (t+1)·kPerThread) of it,
// so the peaks come out in cell order.
constexpr int kPerThread = 16;
constexpr int64_t kPeakChunk = int64_t(kThreads) * kPerThread;
static_assert(kPeakChunk == 4096, "heatmap_top_k_work (kernels/backend.hpp) counts chunks of 4096 cells");

// Cell e is a peak: its score is ≥ threshold and no 3×3 neighbour's is greater (the CPU's test, score ==
// max-pooled score, for every input, NaN included: a NaN score is no peak and a NaN neighbour no rival).
__device__ inline bool heatmap_peak(const float* logits, int64_t e, int64_t plane, int height, int width,
                                    float threshold, float* score) {
  const float* map = logits + e / plane * plane;
  const int i = int(e % plane / width), j = int(e % width);
  const float s = sigmoid(logits[e]);
  if (!(s >= threshold)) return false;
  for (int di = -1; di <= 1; ++di)
    for (int dj = -1; dj <= 1; ++dj) {
      const int a = i + di, b = j + dj;
      if ((di != 0 || dj != 0) && a >= 0 && a < height && b >= 0 && b < width &&
          sigmoid(map[int64_t(a) * width + b]) > s)
        return false;
    }
  *score = s;
  return true;
}

// Peaks among this thread's cells of the chunk; with `cells`, they are written there in order.
__device__ inline int thread_peaks(const float* logits, int64_t n, int64_t plane, int height, int width,
                                   float threshold, int64_t* cells, float* scores) {
  const int64_t first = blockIdx.x * kPeakChunk + int64_t(threadIdx.x) * kPerThread;
  int count = 0;
  for (int64_t e = first; e < first + kPerThread && e < n; ++e) {
    float s = 0;
    if (heatmap_peak(logits, e, plane, height, width, threshold, &s)) {
      if (cells) {
        cells[count] = e;
        scores[count] = s;
      }
      ++count;
    }
  }
  return count;
}

__global__ void peak_count_kernel(const float* logits, int64_t n, int64_t plane, int height, int width, float threshold,
                                  int64_t* chunk_counts) {
  __shared__ int counts[kThreads];
  counts[threadIdx.x] = thread_peaks(logits, n, plane, height, width, threshold, nullptr, nullptr);
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t total = 0;
    for (int t = 0; t < kThreads; ++t) total += counts[t];
    chunk_counts[blockIdx.x] = total;
  }
}

// chunk_counts becomes exclusive offsets; chunk_counts[chunks] the number of peaks.
__global__ void peak_offsets_kernel(int64_t* chunk_counts, int64_t chunks) {
  int64_t total = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t count = chunk_counts[c];
    chunk_counts[c] = total;
    total += count;
  }
  chunk_counts[chunks] = total;
}

__global__ void peak_write_kernel(const float* logits, int64_t n, int64_t plane, int height, int width, float threshold,
                                  const int64_t* chunk_offsets, int64_t* peak_cells, float* peak_scores) {
  __shared__ int offsets[kThreads];
  offsets[threadIdx.x] = thread_peaks(logits, n, plane, height, width, threshold, nullptr, nullptr);
  __syncthreads();
  if (threadIdx.x == 0) {
    int running = 0;
    for (int t = 0; t < kThreads; ++t) {
      const int count = offsets[t];
      offsets[t] = running;
      running += count;
    }
  }
  __syncthreads();
  const int64_t at = chunk_offsets[blockIdx.x] + offsets[threadIdx.x];
  thread_peaks(logits, n, plane, height, width, threshold, peak_cells + at, peak_scores + at);
}

// Peak p's rank is the number of peaks before it in (score descending, cell ascending); the first top_k
// ranks are written. Peaks are in cell order, so "cell ascending" is "index ascending".
__global__ void peak_rank_kernel(const int64_t* peak_cells, const float* peak_scores, const int64_t* total, int top_k,
                                 int64_t* cells, float* scores, int64_t* count) {
  const int64_t peaks = *total;
  if (blockIdx.x == 0 && threadIdx.x == 0) *count = peaks < top_k ? peaks : top_k;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < peaks; p += int64_t(gridDim.x) * blockDim.x) {
    const float s = peak_scores[p];
    int64_t rank = 0;
    for (int64_t q = 0; q < peaks && rank < top_k; ++q) rank += peak_scores[q] > s || (peak_scores[q] == s && q < p);
    if (rank < top_k) {
      cells[rank] = peak_cells[p];
      scores[rank] = s;
    }
  }
}

// ---- greedy rotated NMS: a suppression mask in parallel, then one pass in order ----
__global__ void nms_mask_kernel(const float* boxes, const int32_t* labels, int64_t n, int64_t words, double iou,
                                uint64_t* mask) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * words;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / words, first = e % words * 64;
    uint64_t bits = 0;
    for (int64_t j = first; j < first + 64 && j < n; ++j)
      if (j > i && labels[j] == labels[i] && bev_iou(boxes + 7 * i, boxes + 7 * j) > iou)
        bits |= uint64_t(1) << (j - first);
    mask[e] = bits;
  }
}

__global__ void nms_pass_kernel(const uint64_t* mask, int64_t n, int64_t words, uint8_t* keep) {
  for (int64_t i = 0; i < n; ++i) keep[i] = 1;
  for (int64_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    for (int64_t w = i / 64; w < words; ++w) {
      const uint64_t bits = mask[i * words + w];
      if (bits == 0) continue;
      for (int b = 0; b < 64; ++b)
        if (bits >> b & 1) keep[w * 64 + b] = 0;
    }
  }
}

}  // namespace

void heatmap_top_k(const float* logits, int64_t maps, int height, int width, float threshold, int top_k, int64_t* work,
                   int64_t* cells, float* scores, int64_t* count) {
  const int64_t plane = int64_t(height) * width, n = maps * plane;
  const int64_t chunks = (n + kPeakChunk - 1) / kPeakChunk;
  int64_t* peak_cells = work;
  float* peak_scores = reinterpret_cast<float*>(work + n);
  int64_t* chunk_counts = work + 2 * n;
  if (n == 0 || top_k <= 0) {
    check(cudaMemsetAsync(count, 0, sizeof(int64_t), stream()), "heatmap_top_k");
    return;
  }
  LT_LAUNCH(peak_count_kernel, unsigned(chunks), kThreads, stream())
  (logits, n, plane, height, width, threshold, chunk_counts);
  LT_LAUNCH(peak_offsets_kernel, 1, 1, stream())(chunk_counts, chunks);
  LT_LAUNCH(peak_write_kernel, unsigned(chunks), kThreads, stream())
  (logits, n, plane, height, width, threshold, chunk_counts, peak_cells, peak_scores);
  LT_LAUNCH(peak_rank_kernel, blocks_for(n), kThreads, stream())
  (peak_cells, peak_scores, chunk_counts + chunks, top_k, cells, scores, count);
  check(cudaGetLastError(), "heatmap_top_k");
}

void rotated_nms(const float* boxes, const int32_t* labels, int64_t n, double iou, uint64_t* work, uint8_t* keep) {
  if (n == 0) return;
  const int64_t words = (n + 63) / 64;
  LT_LAUNCH(nms_mask_kernel, blocks_for(n * words), kThreads, stream())(boxes, labels, n, words, iou, work);
  LT_LAUNCH(nms_pass_kernel, 1, 1, stream())(work, n, words, keep);
  check(cudaGetLastError(), "rotated_nms");
}

void gather_positions_forward(const float* maps, const int64_t* positions, int64_t k, int channels, int64_t plane,
                              float* rows) {
  if (k * channels == 0) return;
  LT_LAUNCH(gather_positions_forward_kernel, blocks_for(k * channels), kThreads, stream())
  (maps, positions, k, channels, plane, rows);
  check(cudaGetLastError(), "gather_positions_forward");
}

void gather_positions_backward(const float* drows, const int64_t* positions, int64_t k, int channels, int64_t plane,
                               float* dmaps) {
  if (k * channels == 0) return;
  LT_LAUNCH(gather_positions_backward_kernel, blocks_for(channels), kThreads, stream())
  (drows, positions, k, channels, plane, dmaps);
  check(cudaGetLastError(), "gather_positions_backward");
}

void max_pool3x3(const float* x, float* y, int64_t maps, int height, int width) {
  const int64_t n = maps * height * width;
  if (n == 0) return;
  LT_LAUNCH(max_pool3x3_kernel, blocks_for(n), kThreads, stream())(x, y, maps, height, width);
  check(cudaGetLastError(), "max_pool3x3");
}

void bev_iou_matrix(const float* a, int64_t n, const float* b, int64_t m, double* iou) {
  if (n * m == 0) return;
  LT_LAUNCH(bev_iou_kernel, blocks_for(n * m), kThreads, stream())(a, n, b, m, iou);
  check(cudaGetLastError(), "bev_iou_matrix");
}

}  // namespace lt::LT_CUDA_NS
