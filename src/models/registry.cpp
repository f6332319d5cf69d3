#include "src/models/registry.hpp"

#include <cmath>

#include "io/checkpoint.hpp"
#include "src/common/error.hpp"
#include "src/models/bevdet.hpp"
#include "src/models/semseg.hpp"

namespace lt {

namespace {
std::unique_ptr<Model> make_semseg(const TrainConfig& config) {
  return std::make_unique<Semseg>(config.semseg, config.class_weights);
}
std::unique_ptr<Model> make_bevdet(const TrainConfig& config) {
  return std::make_unique<Bevdet>(config.bevdet);
}

void check_semseg_config(const TrainConfig& c) {
  const int grid = c.semseg.grid_size();
  require(grid % 4 == 0 && std::abs(grid * c.semseg.voxel_size_m - 2 * c.semseg.range_m) < 1e-6,
          "--model.range/--model.voxel_size: 2·range / voxel_size must be a whole multiple of 4 cells (got " +
              std::to_string(2 * c.semseg.range_m / c.semseg.voxel_size_m) + ")");
}

void check_bevdet_config(const TrainConfig& c) {
  const std::array<double, 6>& range = c.bevdet.point_range;
  const double nx = (range[3] - range[0]) / c.bevdet.pillar_m, ny = (range[4] - range[1]) / c.bevdet.pillar_m;
  require(std::abs(nx - std::round(nx)) < 1e-6 && std::abs(ny - std::round(ny)) < 1e-6 &&
              int(std::lround(nx)) % 8 == 0 && int(std::lround(ny)) % 8 == 0,
          "--model.point_range/--model.pillar_size: the x and y extents must be whole multiples of 8 pillars (got " +
              std::to_string(nx) + " × " + std::to_string(ny) + ")");
  require(c.class_weights.empty(), "--train.class_weights: semseg only (bevdet's focal loss has no class weights)");
}
}  // namespace

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> kModels = {
      {"semseg", "per-point semantic segmentation (point MLP, BEV U-Net, point head)", make_semseg,
       ModelOutput::point_labels, check_semseg_config},
      {"bevdet", "BEV 3D detection (CenterPoint head on PointPillars)", make_bevdet, ModelOutput::boxes,
       check_bevdet_config},
  };
  return kModels;
}

const ModelEntry& model_entry(const std::string& name, const std::string& where) {
  for (const ModelEntry& entry : model_registry())
    if (name == entry.name) return entry;
  throw InputError(where + ": model '" + name + "' is not one of " + model_names());
}

std::string model_names() {
  std::string names;
  for (const ModelEntry& entry : model_registry()) names += (names.empty() ? "" : " | ") + std::string(entry.name);
  return names;
}

std::string model_names(ModelOutput output) {
  std::string names;
  for (const ModelEntry& entry : model_registry())
    if (entry.output == output) names += (names.empty() ? "" : " or ") + std::string(entry.name);
  return names;
}

ModelOutput model_output(const std::string& name, const std::string& where) {
  return model_entry(name, where).output;
}

std::unique_ptr<Model> make_model(const TrainConfig& config) {
  return model_entry(config.model_name, "model.name").make(config);
}

std::unique_ptr<Model> load_model(const std::string& checkpoint_path) {
  const CheckpointMeta meta = read_checkpoint_meta(checkpoint_path);
  model_entry(meta.model, checkpoint_path);
  const TrainConfig config = train_config_from(parse_config_text(meta.config, checkpoint_path));
  require(config.model_name == meta.model,
          checkpoint_path + ": stored config names model " + config.model_name + ", the file " + meta.model);
  std::unique_ptr<Model> model = make_model(config);
  read_checkpoint_tensors(checkpoint_path, model->params(), model->buffers(), {});
  return model;
}

}  // namespace lt
