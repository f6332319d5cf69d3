// The CUDA backend's op table (kernels/backend.hpp): the host functions of kernels/cuda/*.cu, in the
// GPU build (lt::cuda) or the emulated one (lt::cuda_emu).
#include "kernels/buffer.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {

const Backend& backend() {
#if defined(__CUDACC__)
  static const char* const name = "cuda";
#else
  static const char* const name = "cuda-emulated";
#endif
  static const Backend table = {
      .name = name,
      .host_memory = false,
      .unsupported = nullptr,
      // memory
      .alloc = alloc,
      .release = release,
      .upload = upload,
      .download = download,
      .copy = copy,
      .fill_zero = fill_zero,
      .synchronize = synchronize,
      .transfers = transfers,
      .stage_acquire = stage_acquire,
      .stage_upload = stage_upload,
      .stage_await = stage_await,
      .stage_release = stage_release,
      .graph_begin = graph_begin,
      .graph_end = graph_end,
      .graph_launchable = graph_launchable,
      .graph_launch = graph_launch,
      .graph_release = graph_release,
      // GEMM
      .set_matmul_precision = set_matmul_precision,
      .matmul_precision = matmul_precision,
      .gemm = gemm,
      // linear
      .linear_forward = linear_forward,
      .linear_backward = linear_backward,
      .linear_relu_forward = linear_relu_forward,
      // convolutions
      .conv2d_forward = conv2d_forward,
      .conv2d_backward = conv2d_backward,
      .conv_transpose_forward = conv_transpose_forward,
      .conv_transpose_backward = conv_transpose_backward,
      .conv2d_relu_forward = conv2d_relu_forward,
      .conv_transpose_relu_forward = conv_transpose_relu_forward,
      .conv2d_relu_at_cells = conv2d_relu_at_cells,
      // batch norm
      .batchnorm_sums = batchnorm_sums,
      .batchnorm_stats = batchnorm_stats,
      .batchnorm_apply = batchnorm_apply,
      .batchnorm_backward_sums = batchnorm_backward_sums,
      .batchnorm_backward_apply = batchnorm_backward_apply,
      .batchnorm_relu_apply = batchnorm_relu_apply,
      .batchnorm_relu_backward_sums = batchnorm_relu_backward_sums,
      .batchnorm_relu_backward_apply = batchnorm_relu_backward_apply,
      // element-wise and layout
      .add = add,
      .relu_forward = relu_forward,
      .relu_backward = relu_backward,
      .concat_channels = concat_channels,
      .split_channels = split_channels,
      // points <-> BEV cells
      .voxelize_max_forward = voxelize_max_forward,
      .voxelize_max_backward = voxelize_max_backward,
      .scatter_mean_forward = scatter_mean_forward,
      .scatter_mean_backward = scatter_mean_backward,
      .devoxelize_forward = devoxelize_forward,
      .devoxelize_backward = devoxelize_backward,
      .devoxelize_head_forward = devoxelize_head_forward,
      .linear_relu_voxelize_max_forward = linear_relu_voxelize_max_forward,
      .count_in_cost_range = count_in_cost_range,
      // losses
      .cross_entropy = cross_entropy,
      .focal_loss = focal_loss,
      .l1_loss = l1_loss,
      .add_loss_share = add_loss_share,
      // detection
      .gather_positions_forward = gather_positions_forward,
      .gather_positions_backward = gather_positions_backward,
      .max_pool3x3 = max_pool3x3,
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
#if !defined(__CUDACC__)
  // The emulation follows the caching allocator's blocks, so that a graph replay using one given back is
  // caught (kernels/cuda/emu/runtime.cpp).
  [[maybe_unused]] static const bool observed = (set_pool_observer(table, ::lt::emu::note_pool_block), true);
#endif
  return table;
}

}  // namespace lt::LT_CUDA_NS
