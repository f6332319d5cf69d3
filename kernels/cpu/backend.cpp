// The CPU backend: host memory and the float instantiations of kernels/cpu/ops.hpp, plus the optimizer
// and norm loops over the flat buffers (the same per-element bodies as src/train/optimizer.cpp).
#include "kernels/backend.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/common/box_iou.hpp"
#include "kernels/common/elementwise.hpp"
#include "kernels/cpu/points.hpp"

namespace lt {
namespace {

void* host_alloc(size_t bytes) {
  return std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
}
void host_release(void* pointer) {
  std::free(pointer);
}
void host_copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void host_copy_within(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}
void host_fill_zero(void* pointer, size_t bytes) {
  if (bytes) std::memset(pointer, 0, bytes);
}
void host_synchronize() {}
TransferLedger host_transfers() {
  return {};  // host memory: nothing crosses
}
// A staging slot on the host: its block is where the backend reads the input (nothing to copy or wait for).
struct HostSlot {
  std::vector<char> block;
};
void* host_stage_acquire(size_t bytes, char** host_block) {
  auto* slot = new HostSlot{std::vector<char>(bytes)};
  *host_block = slot->block.data();
  return slot;
}
const void* host_stage_upload(void* slot) {
  return static_cast<HostSlot*>(slot)->block.data();
}
void host_stage_await(void*) {}
void host_stage_release(void* slot) {
  delete static_cast<HostSlot*>(slot);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b,
          float beta, float* c) {
  using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const Matrix> A(a, trans_a ? k : m, trans_a ? m : k), B(b, trans_b ? n : k, trans_b ? k : n);
  Eigen::Map<Matrix> C(c, m, n);
  if (beta == 0.f)
    C.setZero();  // C may hold anything, NaN included
  else if (beta != 1.f)
    C *= beta;
  if (trans_a && trans_b)
    C.noalias() += alpha * (A.transpose() * B.transpose());
  else if (trans_a)
    C.noalias() += alpha * (A.transpose() * B);
  else if (trans_b)
    C.noalias() += alpha * (A * B.transpose());
  else
    C.noalias() += alpha * (A * B);
}

// The convolutions' im2col workspace, kept between calls of this thread.
std::vector<float>& workspace() {
  thread_local std::vector<float> buffer;
  return buffer;
}
// The CPU keeps activations in fp32 only (it has no 16-bit precision): a narrow one is a programming error.
void require_fp32(bool narrow, const char* op) {
  if (narrow) throw std::logic_error(std::string(op) + ": a 16-bit (narrow) activation on the CPU");
}
void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s) {
  require_fp32(s.x_narrow, "conv2d_forward");
  ops::conv2d_forward(x, weight, bias, y, s, workspace());
}
void conv2d_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                     const ops::Conv2dShape& s) {
  require_fp32(s.x_narrow, "conv2d_backward");
  ops::conv2d_backward(x, weight, dy, dx, dweight, dbias, s, workspace());
}
void conv_transpose_forward(const float* x, const float* weight, const float* bias, float* y,
                            const ops::ConvTransposeShape& s) {
  require_fp32(s.x_narrow, "conv_transpose_forward");
  ops::conv_transpose_forward(x, weight, bias, y, s, workspace());
}
void conv_transpose_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                             float* dbias, const ops::ConvTransposeShape& s) {
  require_fp32(s.x_narrow, "conv_transpose_backward");
  ops::conv_transpose_backward(x, weight, dy, dx, dweight, dbias, s, workspace());
}
void batchnorm_relu_apply(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                          float* y, const ops::BatchNormShape& s) {
  require_fp32(s.y_narrow, "batchnorm_relu_apply");
  ops::batchnorm_relu_apply(x, mean, invstd, gamma, beta, y, s);
}

void conv2d_relu_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s) {
  ops::conv2d_relu_forward(x, weight, bias, y, s, workspace());
}
void conv_transpose_relu_forward(const float* x, const float* weight, const float* bias, float* y,
                                 const ops::ConvTransposeShape& s) {
  ops::conv_transpose_relu_forward(x, weight, bias, y, s, workspace());
}

void batchnorm_stats(const double* sums, int channels, bool training, float* mean, float* invstd, float* running_mean,
                     float* running_var) {
  const double count = training ? sums[2 * channels] : 0.0;  // eval: no sums were made
  for (int c = 0; c < channels; ++c)
    batchnorm_statistics(sums, channels, c, count, training, mean, invstd, running_mean, running_var);
}
void add(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void cross_entropy(const float* logits, const uint8_t* labels, int64_t rows, int classes, const float* class_weights,
                   int ignore_label, float* dlogits, double* loss) {
  *loss = ops::cross_entropy(logits, labels, rows, classes, class_weights, ignore_label, dlogits);
}
void focal_loss(const float* logits, const float* targets, int64_t n, float* dlogits, double* loss) {
  *loss = ops::focal_loss(logits, targets, n, dlogits);
}
void l1_loss(const float* pred, const float* target, int64_t rows, int channels, float* dpred, double* loss) {
  *loss = ops::l1_loss(pred, target, rows, channels, dpred);
}

void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const OptimizerStep& s) {
  if (s.gate && s.gate[1] == 0.f) return;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    lt::adamw_update(param[i], s.gate ? grad[i] * s.gate[0] : grad[i], exp_avg[i], exp_avg_sq[i], s.lr, s.beta1,
                     s.beta2, s.eps, s.decays && !s.decays[i] ? 0.f : s.weight_decay, s.bias1, s.bias2);
}
void sgd_update(float* param, const float* grad, float* momentum_buffer, int64_t n, const OptimizerStep& s) {
  if (s.gate && s.gate[1] == 0.f) return;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    lt::sgd_update(param[i], s.gate ? grad[i] * s.gate[0] : grad[i], momentum_buffer[i], s.lr, s.momentum,
                   s.decays && !s.decays[i] ? 0.f : s.weight_decay, s.first_step);
}
void gradient_gate(const double* norm_sq, const double* loss, double max_norm, float* gate) {
  lt::gradient_gate(*norm_sq, loss ? *loss : 0.0, max_norm, gate[0], gate[1]);
}

void scaled_gradient_gate(double* norm_sq, const double* loss, double max_norm, int64_t growth_interval, double* scaler,
                          float* gate) {
  lt::scaled_gradient_gate(*norm_sq, loss ? *loss : 0.0, max_norm, scaler[0], scaler[1], double(growth_interval),
                           gate[0], gate[1]);
}
void add_loss_share(const double* terms, int count, double weight0, double weight1, double normaliser, double* total) {
  *total += lt::loss_share(terms, count, weight0, weight1, normaliser);
}
void sum_squares(const float* x, int64_t n, double* sum) {
  constexpr int64_t kChunk = 1 << 14;  // fixed chunks summed in order: the same bits for any thread count
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i)
      partial[size_t(c)] += double(x[i]) * double(x[i]);
  double total = 0;
  for (double p : partial) total += p;
  *sum = total;
}
void scale(float* x, int64_t n, float factor) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}
void count_in_cost_range(const float* xyzi, int64_t n, int64_t* count) {
  *count = count_points_in_cost_range(xyzi, n);
}

void bev_iou_matrix(const float* a, int64_t n, const float* b, int64_t m, double* iou) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) iou[i * m + j] = bev_iou(a + 7 * i, b + 7 * j);
}

void heatmap_top_k(const float* logits, int64_t maps, int height, int width, float threshold, int top_k, int64_t* work,
                   int64_t* cells, float* scores, int64_t* count) {
  const int64_t n = maps * height * width;
  std::vector<float> score(static_cast<size_t>(n)), pooled(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) score[size_t(i)] = sigmoid(logits[i]);
  ops::max_pool3x3(score.data(), pooled.data(), maps, height, width);
  int64_t peaks = 0;
  for (int64_t i = 0; i < n; ++i)
    if (score[size_t(i)] == pooled[size_t(i)] && score[size_t(i)] >= threshold) work[peaks++] = i;
  const int64_t keep = std::min<int64_t>(peaks, std::max(top_k, 0));
  std::partial_sort(work, work + keep, work + peaks, [&](int64_t a, int64_t b) {
    return score[size_t(a)] != score[size_t(b)] ? score[size_t(a)] > score[size_t(b)] : a < b;
  });
  for (int64_t r = 0; r < keep; ++r) {
    cells[r] = work[r];
    scores[r] = score[size_t(work[r])];
  }
  *count = keep;
}

void rotated_nms(const float* boxes, const int32_t* labels, int64_t n, double iou, uint64_t*, uint8_t* keep) {
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i) {
    keep[i] = 1;
    for (int64_t k : kept)
      if (labels[k] == labels[i] && bev_iou(boxes + 7 * k, boxes + 7 * i) > iou) {
        keep[i] = 0;
        break;
      }
    if (keep[i]) kept.push_back(i);
  }
}

}  // namespace

const Backend& cpu_backend() {
  // Graphs capture a device's launches: the CPU has none to capture.
  // GEMM inputs in 16 bits are a GPU's (tensor cores): the CPU multiplies in fp32 only.
  static const char* const unsupported[] = {
      "graph_begin", "graph_end", "graph_launchable", "graph_launch", "graph_release", "set_matmul_precision", nullptr};
  static const Backend backend = {
      .name = "cpu",
      .host_memory = true,
      .unsupported = unsupported,
      // memory
      .alloc = host_alloc,
      .release = host_release,
      .upload = host_copy,
      .download = host_copy,
      .copy = host_copy_within,
      .fill_zero = host_fill_zero,
      .synchronize = host_synchronize,
      .transfers = host_transfers,
      .stage_acquire = host_stage_acquire,
      .stage_upload = host_stage_upload,
      .stage_await = host_stage_await,
      .stage_release = host_stage_release,
      .graph_begin = nullptr,
      .graph_end = nullptr,
      .graph_launchable = nullptr,
      .graph_launch = nullptr,
      .graph_release = nullptr,
      .set_matmul_precision = nullptr,
      .matmul_precision = [] { return Precision::fp32; },
      // GEMM
      .gemm = gemm,
      // linear
      .linear_forward = ops::linear_forward<float>,
      .linear_backward = ops::linear_backward<float>,
      .linear_relu_forward = ops::linear_relu_forward<float>,
      // convolutions
      .conv2d_forward = conv2d_forward,
      .conv2d_backward = conv2d_backward,
      .conv_transpose_forward = conv_transpose_forward,
      .conv_transpose_backward = conv_transpose_backward,
      .conv2d_relu_forward = conv2d_relu_forward,
      .conv_transpose_relu_forward = conv_transpose_relu_forward,
      .conv2d_relu_at_cells = ops::conv2d_relu_at_cells<float>,
      // batch norm
      .batchnorm_sums = ops::batchnorm_sums<float>,
      .batchnorm_stats = batchnorm_stats,
      .batchnorm_apply = ops::batchnorm_apply<float>,
      .batchnorm_backward_sums = ops::batchnorm_backward_sums<float>,
      .batchnorm_backward_apply = ops::batchnorm_backward_apply<float>,
      .batchnorm_relu_apply = batchnorm_relu_apply,
      .batchnorm_relu_backward_sums = ops::batchnorm_relu_backward_sums<float>,
      .batchnorm_relu_backward_apply = ops::batchnorm_relu_backward_apply<float>,
      // element-wise and layout
      .add = add,
      .relu_forward = ops::relu_forward<float>,
      .relu_backward = ops::relu_backward<float>,
      .concat_channels = ops::concat_channels<float>,
      .split_channels = ops::split_channels<float>,
      // points <-> BEV cells
      .voxelize_max_forward = ops::voxelize_max_forward<float>,
      .voxelize_max_backward = ops::voxelize_max_backward<float>,
      .scatter_mean_forward = ops::scatter_mean_forward<float>,
      .scatter_mean_backward = ops::scatter_mean_backward<float>,
      .devoxelize_forward = ops::devoxelize_forward<float>,
      .devoxelize_backward = ops::devoxelize_backward<float>,
      .devoxelize_head_forward = ops::devoxelize_head_forward<float>,
      .linear_relu_voxelize_max_forward = ops::linear_relu_voxelize_max_forward<float>,
      .count_in_cost_range = count_in_cost_range,
      // losses
      .cross_entropy = cross_entropy,
      .focal_loss = focal_loss,
      .l1_loss = l1_loss,
      .add_loss_share = add_loss_share,
      // detection
      .gather_positions_forward = ops::gather_positions_forward<float>,
      .gather_positions_backward = ops::gather_positions_backward<float>,
      .max_pool3x3 = ops::max_pool3x3<float>,
      .bev_iou_matrix = bev_iou_matrix,
      .heatmap_top_k = heatmap_top_k,
      .rotated_nms = rotated_nms,
      // optimizer
      .adamw_update = adamw_update,
      .sgd_update = sgd_update,
      .sum_squares = sum_squares,
      .scale = scale,
      .gradient_gate = gradient_gate,
      .scaled_gradient_gate = scaled_gradient_gate,
  };
  return backend;
}

}  // namespace lt
