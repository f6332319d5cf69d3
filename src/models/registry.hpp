#pragma once
// The models lidartrain knows, by name, in one place (LAMMPS' style of registry): `[model] name = …` in a
// config and a checkpoint's `model` attribute are looked up here, and nothing else compares a model's name
// to decide what it is. Adding a model: its own files (src/models/<name>.{hpp,cpp}: a Model), its config
// struct in TrainConfig (src/train/config.hpp), its entry in kModels (registry.cpp: factory, [model] keys,
// rules), and its tests.
#include <memory>
#include <string>
#include <vector>

#include "src/models/model.hpp"
#include "src/train/config.hpp"

namespace lt {

struct ModelEntry {
  const char* name;     // [model] name, a checkpoint's model attribute
  const char* summary;  // for --help and errors
  // The model a config describes, uninitialised (Model::init or a checkpoint fills its parameters).
  std::unique_ptr<Model> (*make)(const TrainConfig& config);
  // What it predicts of a frame; its datasets must hold the same (labels per point, or boxes).
  ModelOutput output;
  // Its [model] keys (beyond model.name and model.head_channels, which every model has): declared with
  // their defaults and help, and read into its part of a TrainConfig with their types and ranges checked
  // (InputError naming the key).
  void (*declare_keys)(po::options_description& options);
  void (*read_keys)(const po::variables_map& values, TrainConfig& config);
  // Its rules across keys, once the whole config is read; InputError naming the keys otherwise.
  void (*check_config)(const TrainConfig& config);
};

// Every model, in the order --help lists them.
const std::vector<ModelEntry>& model_registry();
// The entry of `name`; InputError naming the models there are when it is none of them.
const ModelEntry& model_entry(const std::string& name, const std::string& where);
// "semseg | bevdet": the names, for help texts.
std::string model_names();
// "bevdet": the names of the models that predict `output`, joined by " or " (for errors).
std::string model_names(ModelOutput output);
// What `name` predicts; InputError naming `where` for an unknown model.
ModelOutput model_output(const std::string& name, const std::string& where);

// The model a config names, uninitialised.
std::unique_ptr<Model> make_model(const TrainConfig& config);
// Builds the model a checkpoint's stored config names and loads its tensors.
std::unique_ptr<Model> load_model(const std::string& checkpoint_path);

}  // namespace lt
