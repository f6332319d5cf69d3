#pragma once
// bevdet: a CenterPoint head on a PointPillars backbone (DESIGN.md §5).
//
//   pillar features (10): x, y, z, i, offsets to the pillar's point mean (3), to the pillar centre (x, y),
//                         range √(x² + y² + z²)                                   (N, 10), points in range
//   pfn: Linear BN ReLU per point, scatter-max per pillar → pseudo-image          (B, C, ny, nx)
//   backbone (SECOND/PointPillars RPN): three blocks of Conv3×3 BN ReLU, the first of each with stride 2
//            (strides 2, 4, 8); each block's output upsampled to stride 2 by ConvTranspose (k = 1, 2, 4)
//            BN ReLU and concatenated                                             (B, 3U, ny/2, nx/2)
//   head: shared Conv3×3 BN ReLU; then, as CenterPoint's SeparateHead with two convs, per output a hidden
//         Conv3×3 BN ReLU and a Conv3×3: heatmap (3 classes, bias −2.19 so sigmoid starts at 0.1) and
//         regression (8: centre offset x, y; z; log dx, dy, dz; sin, cos heading)
//   loss: CenterNet focal loss on the heatmap against Gaussian targets (CornerNet radius, min overlap
//         0.1, min radius 2) + 0.25 × L1 on the regression at object centres, both / object count
//   decode: sigmoid, 3×3 max-pool peaks, top-K over classes and cells, score threshold, optional
//           rotated BEV NMS per class
// Maps are (B, C, H = y cells, W = x cells), cell (iy, ix) at b·H·W + iy·W + ix, as OpenPCDet's.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "src/models/model.hpp"
#include "src/nn/layers.hpp"

namespace lt {

constexpr int kDetectionClasses = 3;  // Car, Pedestrian, Cyclist: heatmap channel = box class − 1
constexpr int kBoxCodeSize = 8;       // regression channels
constexpr int kBevdetOutStride = 2;   // head cells per pillar

struct BevdetConfig {
  // x_min, y_min, z_min, x_max, y_max, z_max (LiDAR frame, m): points outside are not used; objects
  // whose centre lies outside are not targets.
  std::array<double, 6> point_range = {-40.96, -40.96, -3.0, 40.96, 40.96, 1.0};
  double pillar_m = 0.32;
  int pfn_channels = 32;
  std::array<int, 3> layers = {1, 2, 2};  // Conv3×3 BN ReLU per block
  std::array<int, 3> channels = {32, 64, 128};
  int upsample_channels = 64;  // per block, after its ConvTranspose
  int head_channels = 64;
  double min_overlap = 0.1;
  int min_radius = 2;
  int top_k = 100;
  double score_threshold = 0.1;
  double nms_iou = 0;  // 0: no NMS
  int grid_x() const;  // pillars along x (W)
  int grid_y() const;
  int out_x() const { return grid_x() / kBevdetOutStride; }
  int out_y() const { return grid_y() / kBevdetOutStride; }
  double cell_m() const { return pillar_m * kBevdetOutStride; }
};

// CornerNet's Gaussian radius for a box of `height` × `width` head cells, as OpenPCDet's
// gaussian_radius (kept as published, including its well-known quirks, so heatmaps compare).
double gaussian_radius(double height, double width, double min_overlap);
// Draws a Gaussian of `radius` (σ = (2r + 1) / 6) centred on cell (cx, cy) into one heatmap plane by
// element-wise max (OpenPCDet's draw_gaussian_to_heatmap).
void draw_gaussian(float* plane, int height, int width, int cx, int cy, int radius);

// Training targets of a batch: heatmaps (B, 3, Ho, Wo) and, per object, its head cell and 8 regression
// targets. Boxes with a non-finite value, a non-positive size, a class outside 1..3 or a centre outside
// the range are not targets (counted in `skipped`).
struct BevdetTargets {
  std::vector<float> heatmap;
  std::vector<int64_t> positions;  // (K) b·Ho·Wo + iy·Wo + ix
  std::vector<float> regression;   // (K, 8)
  int64_t skipped = 0;
  int64_t objects() const { return int64_t(positions.size()); }
};
BevdetTargets make_bevdet_targets(const BevdetConfig& config, const PointBatch& batch);

struct BevdetInput : ModelInput {
  ops::CellIndex cells;         // pillars of the points in range
  std::vector<float> features;  // (N, 10), points in range
  BevdetTargets targets;        // training only
  // The cell index's five arrays, then features (5), the targets' heatmap (6), positions (7), regression (8).
  std::vector<HostArray> arrays() const override {
    std::vector<HostArray> out;
    add_cell_index_arrays(cells, out);
    for (HostArray a : {host_array(features), host_array(targets.heatmap), host_array(targets.positions),
                        host_array(targets.regression)})
      out.push_back(a);
    return out;
  }
  static constexpr size_t kFeatures = 5, kHeatmap = 6, kPositions = 7, kRegression = 8;
};

// Greedy NMS per class: boxes sorted by score; one overlapping a kept box of its class with BEV IoU
// above `iou` is dropped. Returns the kept detections, by score.
std::vector<Detection> rotated_nms(std::vector<Detection> detections, double iou);

class Bevdet : public Model {
 public:
  explicit Bevdet(const BevdetConfig& config);
  std::string name() const override { return "bevdet"; }
  ModelOutput output() const override { return ModelOutput::boxes; }
  void init(uint64_t seed) override;

  static BevdetInput prepare(const BevdetConfig& config, const PointBatch& batch, bool with_targets);
  std::unique_ptr<ModelInput> prepare(const PointBatch& batch, bool with_targets) const override {
    return std::make_unique<BevdetInput>(prepare(config_, batch, with_targets));
  }
  // The object count of the global batch, at least 1 (a batch without objects still learns its
  // background).
  double loss_normaliser(double total_weight) const override { return total_weight > 1 ? total_weight : 1.0; }
  void forward_loss_on(std::unique_ptr<ModelInput> input, double normaliser, double* total) override;
  void backward() override;
  void set_sync_bn(const SumOverRanks& sum) override;

  // Forward only; outputs kept: heatmap logits (B, 3, Ho, Wo) and regression (B, 8, Ho, Wo).
  void forward(BevdetInput input, bool training);
  // The boxes of each frame of the last forward.
  std::vector<std::vector<Detection>> decode() const;
  // The boxes of each of `frames` frames from heatmap logits (frames, 3, Ho, Wo) and regression
  // (frames, 8, Ho, Wo).
  // Top-K peaks and NMS run on `be` (the arrays in its memory); the CPU's when not given.
  static std::vector<std::vector<Detection>> decode_outputs(const BevdetConfig& config, const float* heatmap_logits,
                                                            const float* regression, int frames);
  static std::vector<std::vector<Detection>> decode_outputs(const BevdetConfig& config, const Backend& be,
                                                            const float* heatmap_logits, const float* regression,
                                                            int frames);
  // prepare + forward (eval mode) + decode.
  std::vector<std::vector<Detection>> detect(const PointBatch& batch);
  std::vector<Prediction> predict(const PointBatch& batch) override;
  std::array<double, 6> point_range() const override { return config_.point_range; }

  const BevdetConfig& config() const { return config_; }
  const std::vector<float>& heatmap_logits() const { return heatmap_; }
  const std::vector<float>& regression() const { return reg_; }
  // The last forward_loss's parts (already divided by the normaliser): focal, 0.25 × L1 (read back now).
  double last_heatmap_loss() const;
  double last_regression_loss() const;

 private:
  BevdetConfig config_;
  LinearBnRelu pfn_;
  std::vector<ConvBnRelu> blocks_[3];
  ConvBnRelu deblocks_[3];
  ConvBnRelu shared_, heatmap_hidden_, reg_hidden_;
  Conv2d heatmap_conv_, reg_conv_;

  // Activations of the last forward, on the model's backend (inputs and outputs also on the host).
  int frames_ = 0;
  int64_t points_ = 0;
  ops::CellIndex cells_;
  ops::CellIndexView cells_view_;
  std::vector<float> features_;
  const float* features_on_ = nullptr;
  Buffer<float> pseudo_image_, cat_, heatmap_on_, reg_on_;
  std::vector<float> heatmap_, reg_;  // on the host
  Buffer<int64_t> argmax_;
  // Kept by forward_loss for backward.
  Buffer<float> dheatmap_, dreg_;
  Buffer<double> losses_;  // the last forward_loss's focal and L1 sums
  // Backward's gradients of the dense part (members, so that a graphed section finds them where it left
  // them): at cat_, the shared conv's output, the heads' hidden layers, each deblock's output, each block's
  // output, and each block layer's input (d_layer_in_[0][0]: the pseudo-image's).
  Buffer<float> d_cat_, d_shared_, d_from_reg_, d_hidden_, d_up_[3], d_block_out_[3];
  std::vector<Buffer<float>> d_layer_in_[3];
  GraphedSection dense_forward_, dense_backward_;  // training: blocks, deblocks and head (set_cuda_graphs)
  void list_dense_buffers(std::vector<uintptr_t>& addresses) const override;
  double loss_normaliser_ = 1;

  // Where the output convs write (the host vectors on the CPU) and where the outputs then are.
  float* output(std::vector<float>& host, Buffer<float>& on_backend, size_t count);
  const float* heatmap_on_backend() const { return be().host_memory ? heatmap_.data() : heatmap_on_.data(); }
  const float* reg_on_backend() const { return be().host_memory ? reg_.data() : reg_on_.data(); }
  // A head's convolution of `input`'s output (narrow or not).
  void conv_forward(const DeviceParams& p, const Conv2d& conv, const ConvBnRelu& input, float* y);
  void conv_backward(const DeviceParams& p, const Conv2d& conv, const ConvBnRelu& input, const float* dy, float* dx);
};

}  // namespace lt
