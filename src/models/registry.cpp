#include "src/models/registry.hpp"

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
}  // namespace

const std::vector<ModelEntry>& model_registry() {
  static const std::vector<ModelEntry> kModels = {
      {"semseg", "per-point semantic segmentation (point MLP, BEV U-Net, point head)", make_semseg, true, false},
      {"bevdet", "BEV 3D detection (CenterPoint head on PointPillars)", make_bevdet, false, true},
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
