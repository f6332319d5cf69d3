#include "src/models/registry.hpp"

#include <algorithm>
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

void declare_semseg_keys(po::options_description& options) {
  options.add_options()("model.voxel_size", po::value<double>()->default_value(0.8), "semseg: BEV cell size, m")(
      "model.range", po::value<double>()->default_value(51.2), "semseg: the grid covers x, y in [-range, range), m")(
      "model.point_channels", po::value<std::string>()->default_value("32,32"), "semseg: point MLP widths C1,C2")(
      "model.bev_channels", po::value<std::string>()->default_value("32,64,128"), "semseg: U-Net widths per stage");
}

void read_semseg_keys(const po::variables_map& v, TrainConfig& c) {
  for (const char* key : {"model.voxel_size", "model.range"}) require_positive(v, key);
  c.semseg.voxel_size_m = v["model.voxel_size"].as<double>();
  c.semseg.range_m = v["model.range"].as<double>();
  const auto point = parse_positive_ints(v["model.point_channels"].as<std::string>(), "model.point_channels");
  const auto bev = parse_positive_ints(v["model.bev_channels"].as<std::string>(), "model.bev_channels");
  require(point.size() == 2, "--model.point_channels: expected 2 comma-separated values");
  require(bev.size() == 3, "--model.bev_channels: expected 3 comma-separated values");
  c.semseg.point_channels = {point[0], point[1]};
  c.semseg.bev_channels = {bev[0], bev[1], bev[2]};
  c.semseg.head_channels = v["model.head_channels"].as<int>();
}

void check_semseg_config(const TrainConfig& c) {
  const int grid = c.semseg.grid_size();
  require(grid % 4 == 0 && std::abs(grid * c.semseg.voxel_size_m - 2 * c.semseg.range_m) < 1e-6,
          "--model.range/--model.voxel_size: 2·range / voxel_size must be a whole multiple of 4 cells (got " +
              std::to_string(2 * c.semseg.range_m / c.semseg.voxel_size_m) + ")");
}

void declare_bevdet_keys(po::options_description& options) {
  options.add_options()("model.point_range", po::value<std::string>()->default_value("-40.96,-40.96,-3,40.96,40.96,1"),
                        "bevdet: x_min,y_min,z_min,x_max,y_max,z_max of the points and objects used, m")(
      "model.pillar_size", po::value<double>()->default_value(0.32), "bevdet: pillar size in x and y, m")(
      "model.pfn_channels", po::value<int>()->default_value(32), "bevdet: pillar feature width")(
      "model.backbone_layers", po::value<std::string>()->default_value("1,2,2"),
      "bevdet: Conv3x3 layers per block after its stride-2 conv")(
      "model.backbone_channels", po::value<std::string>()->default_value("32,64,128"), "bevdet: widths per block")(
      "model.upsample_channels", po::value<int>()->default_value(64), "bevdet: width per upsampled block")(
      "model.min_overlap", po::value<double>()->default_value(0.1), "bevdet: CornerNet radius min overlap")(
      "model.min_radius", po::value<int>()->default_value(2), "bevdet: smallest heatmap Gaussian radius, cells")(
      "model.top_k", po::value<int>()->default_value(100), "bevdet: detections kept per frame before NMS")(
      "model.score_threshold", po::value<double>()->default_value(0.1), "bevdet: lowest detection score kept")(
      "model.nms_iou", po::value<double>()->default_value(0.0),
      "bevdet: rotated BEV NMS per class above this IoU (0: none)");
}

void read_bevdet_keys(const po::variables_map& v, TrainConfig& c) {
  for (const char* key :
       {"model.pillar_size", "model.pfn_channels", "model.upsample_channels", "model.min_radius", "model.top_k"})
    require_positive(v, key);
  for (const char* key : {"model.score_threshold", "model.nms_iou"}) require_non_negative(v, key);
  const auto range = parse_finite_doubles(v["model.point_range"].as<std::string>(), "model.point_range");
  require(range.size() == 6 && range[0] < range[3] && range[1] < range[4] && range[2] < range[5],
          "--model.point_range: expected x_min,y_min,z_min,x_max,y_max,z_max with each min below its max");
  std::copy(range.begin(), range.end(), c.bevdet.point_range.begin());
  c.bevdet.pillar_m = v["model.pillar_size"].as<double>();
  c.bevdet.pfn_channels = v["model.pfn_channels"].as<int>();
  const auto layers = parse_positive_ints(v["model.backbone_layers"].as<std::string>(), "model.backbone_layers");
  const auto widths = parse_positive_ints(v["model.backbone_channels"].as<std::string>(), "model.backbone_channels");
  require(layers.size() == 3, "--model.backbone_layers: expected 3 comma-separated values");
  require(widths.size() == 3, "--model.backbone_channels: expected 3 comma-separated values");
  std::copy(layers.begin(), layers.end(), c.bevdet.layers.begin());
  std::copy(widths.begin(), widths.end(), c.bevdet.channels.begin());
  c.bevdet.upsample_channels = v["model.upsample_channels"].as<int>();
  c.bevdet.head_channels = v["model.head_channels"].as<int>();
  c.bevdet.min_overlap = v["model.min_overlap"].as<double>();
  require(c.bevdet.min_overlap > 0 && c.bevdet.min_overlap < 1, "--model.min_overlap: must be in (0, 1)");
  c.bevdet.min_radius = v["model.min_radius"].as<int>();
  c.bevdet.top_k = v["model.top_k"].as<int>();
  c.bevdet.score_threshold = v["model.score_threshold"].as<double>();
  c.bevdet.nms_iou = v["model.nms_iou"].as<double>();
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
       ModelOutput::point_labels, declare_semseg_keys, read_semseg_keys, check_semseg_config},
      {"bevdet", "BEV 3D detection (CenterPoint head on PointPillars)", make_bevdet, ModelOutput::boxes,
       declare_bevdet_keys, read_bevdet_keys, check_bevdet_config},
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
