// Losses on the GPU: cross-entropy with an ignore id and class weights (semseg), CenterNet's focal loss
// and L1 (bevdet). Per-element work in parallel, the sums in a fixed order (reduce.cuh): the same inputs
// give the same bits on every run.
#include "kernels/common/elementwise.hpp"
#include "kernels/cuda/ops.cuh"
#include "kernels/cuda/reduce.cuh"

namespace lt::LT_CUDA_NS {
namespace {

// A row's largest logit and Σ exp(z − max), in double (the CPU's arithmetic).
__device__ inline void softmax_terms(const float* z, int classes, double* max_logit, double* sum_exp) {
  double m = double(z[0]);
  for (int k = 1; k < classes; ++k) m = fmax(m, double(z[k]));
  double sum = 0;
  for (int k = 0; k < classes; ++k) sum += exp(double(z[k]) - m);
  *max_logit = m;
  *sum_exp = sum;
}

// One thread per row: its weighted loss and weight (0 for ignored rows).
__global__ void cross_entropy_rows_kernel(const float* logits, const uint8_t* labels, int64_t rows, int classes,
                                          const float* class_weights, int ignore_label, double* row_loss,
                                          double* row_weight) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows; r += int64_t(gridDim.x) * blockDim.x) {
    const int label = labels[r];
    if (label == ignore_label || label >= classes) {
      row_loss[r] = 0;
      row_weight[r] = 0;
      continue;
    }
    const float* z = logits + r * classes;
    double max_logit, sum_exp;
    softmax_terms(z, classes, &max_logit, &sum_exp);
    const double weight = class_weights ? double(class_weights[label]) : 1.0;
    row_loss[r] = weight * (log(sum_exp) + max_logit - double(z[label]));
    row_weight[r] = weight;
  }
}

// totals = (Σ loss, Σ weight); loss = their ratio (0 when nothing counted).
__global__ void cross_entropy_finish_kernel(const double* totals, double* loss) {
  *loss = totals[1] > 0 ? totals[0] / totals[1] : 0.0;
}

__global__ void cross_entropy_grad_kernel(const float* logits, const uint8_t* labels, int64_t rows, int classes,
                                          const double* row_weight, const double* totals, int ignore_label,
                                          float* dlogits) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows; r += int64_t(gridDim.x) * blockDim.x) {
    float* d = dlogits + r * classes;
    const int label = labels[r];
    const double total_weight = totals[1];
    if (label == ignore_label || label >= classes || total_weight <= 0) {
      for (int k = 0; k < classes; ++k) d[k] = 0.f;
      continue;
    }
    const float* z = logits + r * classes;
    double max_logit, sum_exp;
    softmax_terms(z, classes, &max_logit, &sum_exp);
    const double scale = row_weight[r] / total_weight;
    for (int k = 0; k < classes; ++k)
      d[k] = float(scale * (exp(double(z[k]) - max_logit) / sum_exp - (k == label ? 1.0 : 0.0)));
  }
}

// Per block: the loss sum over its chunk of elements, and each element's gradient.
__global__ void focal_loss_kernel(const float* logits, const float* targets, int64_t n, float* dlogits,
                                  double* partial) {
  __shared__ double scratch[kThreads + 1];
  const int64_t begin = int64_t(blockIdx.x) * kReduceChunk;
  const int64_t end = begin + kReduceChunk < n ? begin + kReduceChunk : n;
  double mine = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    float loss, grad;
    focal_loss_element(logits[i], targets[i], &loss, &grad);
    mine += double(loss);
    if (dlogits) dlogits[i] = grad;
  }
  const double total = block_sum(mine, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void l1_loss_kernel(const float* pred, const float* target, int64_t n, float* dpred, double* partial) {
  __shared__ double scratch[kThreads + 1];
  const int64_t begin = int64_t(blockIdx.x) * kReduceChunk;
  const int64_t end = begin + kReduceChunk < n ? begin + kReduceChunk : n;
  double mine = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    float grad;
    mine += double(l1_element(pred[i], target[i], &grad));
    if (dpred) dpred[i] = grad;
  }
  const double total = block_sum(mine, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

}  // namespace

void cross_entropy(const float* logits, const uint8_t* labels, int64_t rows, int classes, const float* class_weights,
                   int ignore_label, float* dlogits, double* loss) {
  // Scratch 0: per-row losses then weights; scratch 1: the two totals.
  auto* row_values = static_cast<double*>(scratch(kScratchOp0, sizeof(double) * 2 * size_t(rows > 0 ? rows : 1)));
  double* row_loss = row_values;
  double* row_weight = row_values + rows;
  auto* totals = static_cast<double*>(scratch(kScratchOp1, sizeof(double) * 2));
  if (rows > 0) LT_LAUNCH(cross_entropy_rows_kernel, blocks_for(rows), kThreads, stream())
  (logits, labels, rows, classes, class_weights, ignore_label, row_loss, row_weight);
  sum_doubles(row_loss, rows, totals);
  sum_doubles(row_weight, rows, totals + 1);
  LT_LAUNCH(cross_entropy_finish_kernel, 1, 1, stream())(totals, loss);
  if (dlogits && rows > 0) LT_LAUNCH(cross_entropy_grad_kernel, blocks_for(rows), kThreads, stream())
  (logits, labels, rows, classes, row_weight, totals, ignore_label, dlogits);
  check(cudaGetLastError(), "cross_entropy");
}

void focal_loss(const float* logits, const float* targets, int64_t n, float* dlogits, double* loss) {
  const int64_t chunks = reduce_chunks(n);
  auto* partial = static_cast<double*>(scratch(kScratchOp0, sizeof(double) * size_t(chunks)));
  LT_LAUNCH(focal_loss_kernel, unsigned(chunks), kThreads, stream())(logits, targets, n, dlogits, partial);
  sum_doubles(partial, chunks, loss);
  check(cudaGetLastError(), "focal_loss");
}

void l1_loss(const float* pred, const float* target, int64_t rows, int channels, float* dpred, double* loss) {
  const int64_t n = rows * channels, chunks = reduce_chunks(n);
  auto* partial = static_cast<double*>(scratch(kScratchOp0, sizeof(double) * size_t(chunks)));
  LT_LAUNCH(l1_loss_kernel, unsigned(chunks), kThreads, stream())(pred, target, n, dpred, partial);
  sum_doubles(partial, chunks, loss);
  check(cudaGetLastError(), "l1_loss");
}

namespace {
__global__ void add_loss_share_kernel(const double* terms, int count, double weight0, double weight1, double normaliser,
                                      double* total) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *total += ::lt::loss_share(terms, count, weight0, weight1, normaliser);
}
}  // namespace

void add_loss_share(const double* terms, int count, double weight0, double weight1, double normaliser, double* total) {
  LT_LAUNCH(add_loss_share_kernel, 1, 1, stream())(terms, count, weight0, weight1, normaliser, total);
  check(cudaGetLastError(), "add_loss_share");
}

}  // namespace lt::LT_CUDA_NS
