#pragma once
// What the training loop, eval, infer and profile see of a model (DESIGN.md §5): semseg and bevdet
// both implement it. A micro-batch's input is prepared from its frames on the loader thread (features,
// BEV cell index, training targets), then forward computes the loss and keeps what backward needs;
// backward walks the layers in reverse and reports, after each, which gradients are final.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/buffer.hpp"
#include "kernels/staged_input.hpp"
#include "src/common/clock.hpp"
#include "src/nn/layers.hpp"

namespace lt {

// Frames concatenated, with each point's frame (as spconv/OpenPCDet batch them), and their boxes.
struct PointBatch {
  int frames = 0;
  std::vector<float> points;        // (N, 4)
  std::vector<int32_t> frame_of;    // (N)
  std::vector<uint8_t> labels;      // (N), may be empty (inference, or a source without labels)
  std::vector<float> boxes;         // (B, 7) x, y, z, dx, dy, dz, heading
  std::vector<uint8_t> box_labels;  // (B) 1 Car, 2 Pedestrian, 3 Cyclist
  std::vector<int32_t> box_frame;   // (B)
  int64_t num_points() const { return int64_t(frame_of.size()); }
  int64_t num_boxes() const { return int64_t(box_labels.size()); }
};

// A prepared micro-batch. `loss_weight` is what the loss is normalised by, summed over the global
// batch: semseg Σ class weight over labelled points, bevdet the number of objects.
struct ModelInput {
  ModelInput() = default;
  ModelInput(ModelInput&&) = default;  // moves (its staged arrays are one slot's), never copies
  ModelInput& operator=(ModelInput&&) = default;
  virtual ~ModelInput() = default;
  int frames = 0;
  int64_t points = 0;
  double loss_weight = 0;
  // The arrays forward and the loss read, in the order the model finds them in `staged` (each model's own).
  virtual std::vector<HostArray> arrays() const = 0;
  // On a backend whose memory is not the host's: those arrays staged for it (Model::stage_input).
  std::unique_ptr<StagedInput> staged;
};
template <class T>
HostArray host_array(const std::vector<T>& v) {
  return {v.data(), sizeof(T) * v.size()};
}
// A cell index's five arrays (Model::input_cell_index reads them in this order).
inline void add_cell_index_arrays(const ops::CellIndex& cells, std::vector<HostArray>& out) {
  for (const std::vector<int64_t>* v :
       {&cells.point_cell, &cells.cells, &cells.cell_start, &cells.sorted_points, &cells.point_slot})
    out.push_back(host_array(*v));
}

// An object a model found: a box in the LiDAR frame (z at its centre), its class and score.
struct Detection {
  std::array<float, 7> box;  // x, y, z, dx, dy, dz, heading (LiDAR frame)
  int label = 0;             // 1 Car, 2 Pedestrian, 3 Cyclist
  float score = 0;
};

// What a model predicts of a frame, which decides its outputs (a .label file or box texts and label_2)
// and its evaluation (IoU over points or AP over boxes).
enum class ModelOutput { point_labels, boxes };

// One frame's prediction: a training id per point (point_labels) or its detections (boxes).
struct Prediction {
  std::vector<uint8_t> labels;
  std::vector<Detection> detections;
};

// Per-layer figures for `lidartrain profile`.
struct LayerProfile {
  std::string name;
  int64_t params = 0, macs = 0;
  double forward_s = 0, backward_s = 0;
};

// Adds the time since construction to a profile entry's forward or backward seconds; with `sync` (a
// device profiled layer by layer) once the device has finished the layer's work.
struct PhaseTimer {
  std::vector<LayerProfile>& profile;
  size_t index;
  bool backward;
  const Backend* sync = nullptr;
  double start = now_s();
  ~PhaseTimer() {
    if (sync) sync->synchronize();
    (backward ? profile[index].backward_s : profile[index].forward_s) += now_s() - start;
  }
};

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string name() const = 0;
  // What it predicts of a frame (src/models/registry.cpp lists it too).
  virtual ModelOutput output() const = 0;
  virtual void init(uint64_t seed) = 0;
  // Depends on the config only (thread-safe): the loader calls it while the previous step computes.
  // with_targets: the training targets too (the batch must have labels or boxes).
  virtual std::unique_ptr<ModelInput> prepare(const PointBatch& batch, bool with_targets) const = 0;
  // What the summed loss weights of a global batch are turned into before dividing the loss by them.
  virtual double loss_normaliser(double total_weight) const = 0;
  // Training forward and loss: returns this micro-batch's loss divided by `normaliser` (so the shares
  // of all micro-batches and ranks add up to the global batch's loss) and keeps d share / d outputs.
  // Adds it into *total, a double in the backend's memory, instead of returning it: nothing is read back
  // (on a device the trainer reads the step's shares with its other scalars, once). forward_loss is this
  // with the share read back at once.
  virtual void forward_loss_on(std::unique_ptr<ModelInput> input, double normaliser, double* total) = 0;
  double forward_loss(std::unique_ptr<ModelInput> input, double normaliser);
  // The loss scale of fp16 training (the trainer's dynamic loss scaler): the gradients forward_loss keeps
  // for backward are those of the loss times `scale`, so small ones survive 16-bit GEMM inputs; the loss
  // itself is not scaled. 1 by default.
  void set_loss_scale(double scale) { loss_scale_ = scale; }
  // Backward from what forward_loss kept; parameter gradients accumulate into params().grads().
  virtual void backward() = 0;
  // SyncBN: every BN layer sums its statistics over ranks with `sum` (empty: per-rank statistics).
  virtual void set_sync_bn(const SumOverRanks& sum) = 0;
  // Eval mode (infer, eval, profile's inference): the prediction of each frame of `batch`, in frame order
  // (point labels in the frame's point order).
  virtual std::vector<Prediction> predict(const PointBatch& batch) = 0;
  // x0, y0, z0, x1, y1, z1: where the model sees; objects outside it are not counted against it (box
  // evaluation) and a predictions file records it.
  virtual std::array<double, 6> point_range() const = 0;

  // Where the layers run: the CPU (default) or a device backend (kernels/backend.hpp). On a backend without
  // host memory the model keeps device copies of the flat buffers; unless resident (below) or frozen, each
  // forward uploads the parameters and BN buffers and a training forward brings the BN running statistics
  // back, and backward adds the device gradients into params().grads() at its end. Either way backward
  // reports every gradient final at its end (grads-ready offset 0).
  void set_backend(const Backend& backend) {
    backend_ = &backend;
    uploaded_ = folded_ = resident_ = false;
    graphs_ = false;
    ++graph_epoch_;
  }
  // CUDA graphs (train.cuda_graphs), on a backend with graph ops (kernels/backend.hpp): each graphed section
  // of a training step — the fixed-shape dense BEV part of forward and of backward, whose shapes depend on
  // the batch size only — runs eagerly the first time with a shape (the warm-up that sizes its buffers
  // and the ops' scratch), is captured the second time and replayed from then on, while the section's
  // buffers stay where they were at capture (else captured again). The variable-size point stages and the
  // losses run outside. False on a backend without graphs.
  bool set_cuda_graphs(bool on) {
    graphs_ = on && supports_op(*backend_, "graph_launch");
    ++graph_epoch_;
    return graphs_ == on;
  }
  bool cuda_graphs() const { return graphs_; }
  // Graphed sections whose work holds collectives (SyncBN's sums over NCCL): whether a section is replayed,
  // captured or run eagerly must then be the same on every rank (NCCL: a captured collective matches only
  // captured ones, from the capture the ranks made together), so each rank does what all of them can:
  // `min_over_ranks` gives the smallest of the ranks' values (a host collective, once per section run).
  // Unset (the default), each rank decides alone.
  void set_graph_agreement(std::function<int(int)> min_over_ranks) { agree_graphs_ = std::move(min_over_ranks); }
  // How the graphed sections ran since the process began: eagerly (graphs off, or a warm-up), captured
  // (each capture is then launched), replayed.
  struct GraphCounts {
    int64_t eager = 0, captured = 0, replayed = 0;
  };
  const GraphCounts& graph_counts() const { return graph_counts_; }
  // Training with the state resident on a device (the trainer, on a backend without host memory): the
  // parameters, gradients and BN buffers are uploaded at the next forward and from then on live in the
  // backend's memory; forward and backward use them in place, gradients accumulate there (zero_grads),
  // and nothing comes back to the host by itself. The host stores are current only after pull_to_host();
  // push_to_device() sends host values (changed by a resume or a broadcast) back. Not with a frozen model.
  void set_resident(bool on) {
    resident_ = on && !backend_->host_memory;
    uploaded_ = false;
  }
  bool resident() const { return resident_; }
  // Resident: the backend's flat buffers (uploaded first if they are not there yet).
  const DeviceParams& resident_state() { return begin_forward(); }
  // The host's gradients zeroed, and, resident, the backend's.
  void zero_grads();
  // Which of the resident state a copy moves (flags, or'ed).
  enum Stores : unsigned { kValues = 1, kBuffers = 2, kGrads = 4, kValuesAndBuffers = kValues | kBuffers };
  // Resident: those stores of the backend into the host's.
  void pull_to_host(unsigned stores = kValuesAndBuffers);
  // Resident: the host's stores back to the backend.
  void push_to_device(unsigned stores = kValuesAndBuffers);
  // Inference (infer, eval, profile's inference pass): the parameters and BN buffers are uploaded once, at
  // the next forward, and kept on the device for every forward after it, which then copies only its
  // inputs. A training forward while frozen is a programming error; change the host values only after
  // thaw_parameters().
  // A frozen model's eval forwards also fold each BatchNorm into the layer before it (once, at the first
  // of them) and run the fused inference ops (Backend: linear_relu_forward, …); a forward that is not
  // frozen keeps the exact BN of training, which the fused path agrees with to float rounding.
  void freeze_for_inference() {
    if (resident_ && uploaded_) pull_to_host();
    frozen_ = true;
    resident_ = uploaded_ = folded_ = false;
  }
  void thaw_parameters() { frozen_ = uploaded_ = folded_ = false; }
  const Backend& backend() const { return *backend_; }
  // Per-layer times that wait for the device at each layer's end (profile): without it a device's
  // layers are timed as they are queued.
  void set_layer_sync(bool on) { layer_sync_ = on; }
  // Bytes of the backend's caching allocator: in use now and at most since the last reset.
  PoolStats memory() const { return pool_stats(*backend_); }

  // Inputs ahead of their forward, on a backend whose memory is not the host's (nothing on the CPU):
  // stage_input copies the input's arrays into pinned host memory (the loader thread: it reads only the
  // backend), upload_input queues their copy to the device (the trainer, while the step before computes).
  // Forward does what was not done.
  void stage_input(ModelInput& input) const {
    if (!backend_->host_memory && !input.staged)
      input.staged = std::make_unique<StagedInput>(*backend_, input.arrays());
  }
  void upload_input(ModelInput& input) const {
    stage_input(input);
    if (input.staged) input.staged->upload();
  }

  // After each layer's backward, the offset of its first parameter: every gradient at or above it is
  // final (what lets the all-reduce of those buckets start while backward goes on).
  void set_grads_ready_hook(std::function<void(int64_t first_final_offset)> hook) { grads_ready_ = std::move(hook); }
  ParamStore& params() { return params_; }
  ParamStore& buffers() { return buffers_; }
  // Per layer: parameters, MACs of the last forward, and accumulated forward/backward seconds.
  const std::vector<LayerProfile>& profile() const { return profile_; }
  void reset_profile_times() {
    for (LayerProfile& layer : profile_) layer.forward_s = layer.backward_s = 0;
  }

 protected:
  // A section of device work run as a graph (set_cuda_graphs): the graph, and what it was captured with.
  struct GraphedSection {
    GraphedSection() = default;
    GraphedSection(const GraphedSection&) = delete;
    GraphedSection& operator=(const GraphedSection&) = delete;
    ~GraphedSection() {
      if (graph) backend->graph_release(graph);
    }
    const Backend* backend = nullptr;
    void* graph = nullptr;
    uint64_t epoch = 0;               // Model::graph_epoch_ at the warm-up
    std::vector<uintptr_t> shape;     // of the warm-up
    std::vector<uintptr_t> captured;  // shape, then the addresses of every buffer the section uses, at capture
  };
  // Runs `body`, the section's device work for `shape` (the values its work depends on): eagerly without
  // graphs; else warm-up, capture or replay (set_cuda_graphs). A replay needs every address that
  // list_dense_buffers gives unchanged since the capture. The body must queue the same work for the same
  // shape and buffers, and change nothing on the host that a replay (which does not run it) would leave
  // stale. (The grads-ready hook does not fire inside it: on a device every gradient is reported at the end.)
  void run_graphed(GraphedSection& section, std::vector<uintptr_t> shape, const std::function<void()>& body);
  // The address of every buffer the model's graphed sections read or write (pointers, as integers).
  virtual void list_dense_buffers(std::vector<uintptr_t>& addresses) const { (void)addresses; }
  ParamStore params_, buffers_;
  std::vector<LayerProfile> profile_;
  double loss_scale_ = 1;  // set_loss_scale
  void grads_ready(int64_t first_final_offset) {
    if (grads_ready_ && backend_->host_memory) grads_ready_(first_final_offset);
  }
  const Backend& be() const { return *backend_; }
  PhaseTimer timer(size_t index, bool backward) {
    return PhaseTimer{profile_, index, backward, layer_sync_ && !backend_->host_memory ? backend_ : nullptr};
  }
  // Forward takes its input's arrays: staged and uploaded if they are not yet, and kept until the next
  // input is taken (the work reading them, forward's and backward's, is queued by then). On the CPU there
  // is nothing staged, and input_array reads the host vectors.
  void take_input(ModelInput& input) {
    upload_input(input);
    input_ = std::move(input.staged);  // the previous input's slot goes back here
  }
  // Array i of the taken input where the backend reads it: the host vector itself on the CPU.
  template <class T>
  const T* input_array(const std::vector<T>& host, size_t i) {
    return input_ ? input_->array<T>(i) : host.data();
  }
  // The cell index, arrays first … first + 4 of the taken input (add_cell_index_arrays' order).
  ops::CellIndexView input_cell_index(const ops::CellIndex& host, size_t first) {
    if (!input_) return host;
    return {host.num_points,
            host.num_cells,
            host.occupied(),
            input_->array<int64_t>(first),
            input_->array<int64_t>(first + 1),
            input_->array<int64_t>(first + 2),
            input_->array<int64_t>(first + 3),
            input_->array<int64_t>(first + 4)};
  }
  // The flat buffers for this forward (and the backward after it): on a device, the parameters and
  // buffers are uploaded first.
  const DeviceParams& begin_forward();
  // After a training forward on a device: the BN running statistics back to the host.
  void end_forward(bool training);
  // After backward on a device: its gradients added into the host's, then all reported final.
  void end_backward();
  DeviceParams device_params_;
  // An eval forward of a frozen model: BN folded. The first such forward after freezing folds (the layers'
  // fold()) and calls folded_now().
  bool fused_inference(bool training) const { return frozen_ && !training; }
  bool folded() const { return folded_; }
  void folded_now() { folded_ = true; }
  // Parameters per profile entry: the tensors whose names start with the entry's name and a dot.
  void count_profile_params() {
    for (LayerProfile& layer : profile_) {
      layer.params = 0;
      for (const TensorView& view : params_.views())
        if (view.name.rfind(layer.name + ".", 0) == 0) layer.params += view.size;
    }
  }

 private:
  std::function<void(int64_t)> grads_ready_;
  const Backend* backend_ = &cpu_backend();
  bool layer_sync_ = false;
  bool frozen_ = false, uploaded_ = false;  // freeze_for_inference or resident: the device copies are current
  bool resident_ = false;
  bool graphs_ = false;
  std::function<int(int)> agree_graphs_;  // set_graph_agreement
  uint64_t graph_epoch_ = 0;              // changes with the backend or the graphs switch: every section captures again
  GraphCounts graph_counts_;
  bool folded_ = false;  // the layers' folded weights are those of the current parameters
  Buffer<float> device_values_, device_grads_, device_buffers_;
  std::unique_ptr<StagedInput> input_;  // the input being computed (take_input)
  Buffer<double> loss_share_;           // forward_loss's total
};

}  // namespace lt
