// The CUDA backend's op table (kernels/backend.hpp): the host functions of kernels/cuda/*.cu, in the
// GPU build (lt::cuda) or the emulated one (lt::cuda_emu).
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {

const Backend& backend() {
#if defined(__CUDACC__)
  static const char* const name = "cuda";
#else
  static const char* const name = "cuda-emulated";
#endif
  static const Backend table = {
      name,
      false,
      alloc,
      release,
      upload,
      download,
      copy,
      fill_zero,
      synchronize,
      gemm,
      linear_forward,
      linear_backward,
      conv2d_forward,
      conv2d_backward,
      conv_transpose_forward,
      conv_transpose_backward,
      batchnorm_sums,
      batchnorm_stats,
      batchnorm_apply,
      batchnorm_backward_sums,
      batchnorm_backward_apply,
      add,
      relu_forward,
      relu_backward,
      concat_channels,
      split_channels,
      voxelize_max_forward,
      voxelize_max_backward,
      scatter_mean_forward,
      scatter_mean_backward,
      devoxelize_forward,
      devoxelize_backward,
      cross_entropy,
      focal_loss,
      l1_loss,
      gather_positions_forward,
      gather_positions_backward,
      max_pool3x3,
      bev_iou_matrix,
      heatmap_top_k,
      rotated_nms,
      adamw_update,
      sgd_update,
      sum_squares,
      scale,
      count_in_cost_range,
      batchnorm_relu_apply,
      batchnorm_relu_backward_sums,
      batchnorm_relu_backward_apply,
      linear_relu_forward,
      conv2d_relu_forward,
      conv_transpose_relu_forward,
      conv2d_relu_at_cells,
      devoxelize_head_forward,
      linear_relu_voxelize_max_forward,
  };
  return table;
}

}  // namespace lt::LT_CUDA_NS
