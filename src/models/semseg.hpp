#pragma once
// semseg: point → BEV → point segmenter (DESIGN.md §5; the Lyft Level 5 structure).
//
//   point features (8): x, y, z, i, x−cx, y−cy, z−z̄ (cell mean z), range
//   point_mlp: [Linear BN ReLU] × 2                       (N, 8) → (N, C2)
//   voxelize (scatter-max) to the BEV grid               → (B, C2, H, W)
//   bev: 2D U-Net, encoder stages at stride 1, 2, 4 (two Conv3×3 BN ReLU each), decoder stages
//        ConvTranspose 2×2/2 BN ReLU, concat the skip, Conv3×3 BN ReLU
//   devoxelize: each point gathers its cell's feature, concat with its point feature
//   head: Linear BN ReLU, Linear(→20)                    → (N, 20) logits
// Points outside the grid take the point branch only (their BEV feature is 0).
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/label_map.hpp"
#include "src/models/model.hpp"
#include "src/nn/layers.hpp"

namespace lt {

struct SemsegConfig {
  double voxel_size_m = 0.8;
  double range_m = 51.2;  // grid covers x, y in [-range, range)
  std::array<int, 2> point_channels = {32, 32};
  std::array<int, 3> bev_channels = {32, 64, 128};
  int head_channels = 32;
  int grid_size() const { return int(std::lround(2 * range_m / voxel_size_m)); }
};

// What forward needs of a batch besides its weights: each point's BEV cell (the cell index voxelize and
// devoxelize use) and its 8 point features; for training, the labels. Made by Semseg::prepare, which
// depends on the config only, so the training loader makes it on its thread while the previous step
// computes.
struct SemsegInput : ModelInput {
  ops::CellIndex cells;
  std::vector<float> features;  // (N, 8)
  std::vector<uint8_t> labels;  // (N), training only
  // The cell index's five arrays, then features (5), then labels (6).
  std::vector<HostArray> arrays() const override {
    std::vector<HostArray> out;
    add_cell_index_arrays(cells, out);
    out.push_back(host_array(features));
    out.push_back(host_array(labels));
    return out;
  }
  static constexpr size_t kFeatures = 5, kLabels = 6;
};

// The training id of each point from (N, 20) logits: arg-max over ids 1..19 (0 is never predicted; the
// first id wins ties, and a NaN never wins).
std::vector<uint8_t> predict_labels(const std::vector<float>& logits, int64_t points);

class Semseg : public Model {
 public:
  // class_weights: the cross-entropy weight per training id (empty: all 1).
  explicit Semseg(const SemsegConfig& config, std::vector<float> class_weights = {});
  std::string name() const override { return "semseg"; }
  ModelOutput output() const override { return ModelOutput::point_labels; }
  // Arg-max labels of forward(batch, false), split by frame.
  std::vector<Prediction> predict(const PointBatch& batch) override;
  // The BEV grid's square (z unbounded).
  std::array<double, 6> point_range() const override;
  void init(uint64_t seed) override;

  static SemsegInput prepare(const SemsegConfig& config, const PointBatch& batch);
  std::unique_ptr<ModelInput> prepare(const PointBatch& batch, bool with_targets) const override;
  // Σ class weight over the labelled points of the global batch (0: no gradient).
  double loss_normaliser(double total_weight) const override { return total_weight; }
  void forward_loss_on(std::unique_ptr<ModelInput> input, double normaliser, double* total) override;
  void backward() override { backward(dlogits_.data()); }
  // Returns the logits (N, 20). training: batch statistics in BN (and running stats updated). The model
  // keeps the input (backward needs its cell index).
  const std::vector<float>& forward(SemsegInput input, bool training);
  const std::vector<float>& forward(const PointBatch& batch, bool training) {
    return forward(prepare(config_, batch), training);
  }
  // Backward from d loss / d logits (N, 20) in the backend's memory; parameter gradients accumulate
  // into params().grads(). After each layer it calls the grads-ready hook with the offset of that layer's
  // first parameter: every gradient at or above it is final (what lets the all-reduce of those buckets
  // start while backward goes on).
  void backward(const float* dlogits);
  // The same from host gradients.
  void backward(const std::vector<float>& dlogits);

  void set_sync_bn(const SumOverRanks& sum) override;
  const SemsegConfig& config() const { return config_; }

 private:
  SemsegConfig config_;
  std::vector<float> class_weights_;
  LinearBnRelu mlp1_, mlp2_;
  ConvBnRelu enc1a_, enc1b_, enc2a_, enc2b_, enc3a_, enc3b_, up2_, dec2_, up1_, dec1_;
  // The BEV U-Net's blocks in declaration order (init, SyncBN, folding walk them all).
  std::array<ConvBnRelu*, 10> conv_blocks() {
    return {&enc1a_, &enc1b_, &enc2a_, &enc2b_, &enc3a_, &enc3b_, &up2_, &dec2_, &up1_, &dec1_};
  }
  std::array<const ConvBnRelu*, 10> conv_blocks() const {
    return {&enc1a_, &enc1b_, &enc2a_, &enc2b_, &enc3a_, &enc3b_, &up2_, &dec2_, &up1_, &dec1_};
  }
  LinearBnRelu head1_;
  Linear head2_;

  // Activations of the last forward, on the model's backend (the inputs as host arrays and, on a device,
  // their copies there).
  int frames_ = 0;
  int64_t points_ = 0;
  ops::CellIndex cells_;
  ops::CellIndexView cells_view_;
  std::vector<float> features_;  // (N, 8)
  const float* features_on_ = nullptr;
  Buffer<float> grid0_, cat2_, cat1_, point_bev_, logits_on_;
  // head.0's weight split into its BEV and point columns, and its BEV half applied to dec1's map.
  Buffer<float> head_weight_bev_, head_weight_point_, head_bev_map_;
  Buffer<float> dec1_rows_;  // inference: dec1's output at the occupied cells (M, a)
  ops::Conv2dShape head_bev_shape() const {
    const int grid = config_.grid_size();
    return {frames_, config_.bev_channels[0], head1_.channels(), grid, grid, 1, 1, 0, dec1_.out_narrow};
  }
  std::vector<float> logits_;  // on the host
  Buffer<int64_t> argmax_;
  Buffer<float> dlogits_;  // kept by forward_loss for backward()
  Buffer<float> class_weights_staging_;
  Buffer<double> loss_;
  float* logits_output(size_t count);
  // Backward's gradients of the dense part (members, so that a graphed section finds them where it left
  // them), by what they are the gradient of.
  enum DenseGradient {
    kDDec1,
    kDUp1,
    kDEnc1,
    kDDec2,
    kDCat1,
    kDUp2,
    kDEnc2,
    kDEnc3,
    kDCat2,
    kDEnc3a,
    kDFrom3,
    kDEnc2a,
    kDFrom2,
    kDGrid0,
    kDEnc1a,
    kDenseGradients
  };
  Buffer<float> d_dense_[kDenseGradients];
  GraphedSection dense_forward_, dense_backward_;  // training: the U-Net and head.0's BEV half (set_cuda_graphs)
  void list_dense_buffers(std::vector<uintptr_t>& addresses) const override;
};

}  // namespace lt
