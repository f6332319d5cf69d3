#include "io/checkpoint.hpp"

#include <filesystem>

#include "io/hdf5_util.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {
constexpr const char* kSchema = "lidartrain.checkpoint";
constexpr int64_t kVersion = 1;

h5::Handle create_group(hid_t parent, const std::string& name, const std::string& where) {
  const hid_t id = H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  require(id >= 0, where + ": cannot create group " + name);
  return h5::Handle(id, H5Gclose);
}

std::vector<hsize_t> dims_of(const TensorView& view) {
  std::vector<hsize_t> dims(view.shape.begin(), view.shape.end());
  if (dims.empty()) dims.push_back(1);
  return dims;
}

void write_tensors(hid_t group, const ParamStore& store, const std::vector<float>& values, const std::string& where) {
  for (const TensorView& view : store.views())
    h5::write_array(group, view.name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, dims_of(view), dims_of(view)[0],
                    values.data() + view.offset, where);
}

void read_tensors(hid_t group, const std::string& group_name, const ParamStore& store, std::vector<float>& values,
                  const std::string& path) {
  for (const TensorView& view : store.views()) {
    const std::string where = path + ": " + group_name + "/" + view.name;
    require(h5::has_link(group, view.name), where + ": missing (checkpoint of another model configuration?)");
    h5::Handle dataset = h5::open_dataset(group, view.name, path);
    const auto dims = h5::checked_dims(dataset.get(), int(dims_of(view).size()), H5T_FLOAT, 4, true, where);
    require(dims == dims_of(view), where + ": shape differs from the model's");
    h5::read_rows(dataset.get(), H5T_NATIVE_FLOAT, 0, dims[0], values.data() + view.offset, where);
  }
}
}  // namespace

void write_checkpoint(const std::string& path, const CheckpointMeta& meta, const ParamStore& params,
                      const ParamStore& buffers, const OptimizerState& optimizer_state) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  h5::create_file_atomically(path, [&](hid_t f, const std::string& tmp) {
    h5::write_attr_string(f, "schema", kSchema, tmp);
    h5::write_attr_int(f, "version", kVersion, tmp);
    h5::write_attr_string(f, "model", meta.model, tmp);
    h5::write_attr_int(f, "step", meta.step, tmp);
    h5::write_attr_int(f, "epoch", meta.epoch, tmp);
    h5::write_attr_int(f, "samples_seen", meta.samples_seen, tmp);
    h5::write_attr_int(f, "world_size", meta.world_size, tmp);
    h5::write_attr_int(f, "seed", int64_t(meta.seed), tmp);
    h5::write_attr_string(f, "git_sha", meta.git_sha, tmp);
    h5::write_attr_string(f, "created", meta.created, tmp);
    h5::write_attr_string(f, "config", meta.config, tmp);
    {
      h5::Handle model = create_group(f, "model", tmp);
      write_tensors(model.get(), params, params.values(), tmp);
      h5::Handle buffer_group = create_group(f, "buffers", tmp);
      write_tensors(buffer_group.get(), buffers, buffers.values(), tmp);
    }
    if (!optimizer_state.empty()) {
      h5::Handle optimizer = create_group(f, "optimizer", tmp);
      h5::write_attr_string(optimizer.get(), "type", meta.optimizer_type, tmp);
      h5::write_attr_int(optimizer.get(), "steps", meta.optimizer_steps, tmp);
      for (const TensorView& view : params.views()) {
        h5::Handle group = create_group(optimizer.get(), view.name, tmp);
        for (const auto& [name, state] : optimizer_state)
          h5::write_array(group.get(), name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, dims_of(view), dims_of(view)[0],
                          state->data() + view.offset, tmp);
      }
    }
  });
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  require(fs::is_regular_file(path), path + ": no such checkpoint");
  h5::Handle file = h5::open_file_readonly(path);
  const hid_t f = file.get();
  const std::string schema = h5::read_attr_string(f, "schema", path);
  require(schema == kSchema, path + ": schema is '" + schema + "', expected '" + kSchema + "'");
  require(h5::read_attr_int(f, "version", path) == kVersion, path + ": unsupported checkpoint version");
  CheckpointMeta meta;
  meta.model = h5::read_attr_string(f, "model", path);
  meta.step = h5::read_attr_int(f, "step", path);
  meta.epoch = h5::read_attr_int(f, "epoch", path);
  meta.samples_seen = h5::read_attr_int(f, "samples_seen", path);
  meta.world_size = h5::read_attr_int(f, "world_size", path);
  meta.seed = uint64_t(h5::read_attr_int(f, "seed", path));
  meta.git_sha = h5::read_attr_string(f, "git_sha", path);
  meta.created = h5::read_attr_string(f, "created", path);
  meta.config = h5::read_attr_string(f, "config", path);
  if (h5::has_link(f, "optimizer")) {
    h5::Handle optimizer(H5Gopen2(f, "optimizer", H5P_DEFAULT), H5Gclose);
    meta.optimizer_type = h5::read_attr_string(optimizer.get(), "type", path);
    meta.optimizer_steps = h5::read_attr_int(optimizer.get(), "steps", path);
  }
  return meta;
}

void read_checkpoint_tensors(const std::string& path, ParamStore& params, ParamStore& buffers,
                             const OptimizerState& optimizer_state) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  h5::Handle file = h5::open_file_readonly(path);
  const hid_t f = file.get();
  for (const char* group : {"model", "buffers"}) require(h5::has_link(f, group), path + ": missing group /" + group);
  h5::Handle model(H5Gopen2(f, "model", H5P_DEFAULT), H5Gclose);
  read_tensors(model.get(), "/model", params, params.values(), path);
  h5::Handle buffer_group(H5Gopen2(f, "buffers", H5P_DEFAULT), H5Gclose);
  read_tensors(buffer_group.get(), "/buffers", buffers, buffers.values(), path);
  if (optimizer_state.empty()) return;
  require(h5::has_link(f, "optimizer"), path + ": no optimizer state");
  h5::Handle optimizer(H5Gopen2(f, "optimizer", H5P_DEFAULT), H5Gclose);
  for (const TensorView& view : params.views()) {
    const std::string where = path + ": /optimizer/" + view.name;
    require(h5::has_link(optimizer.get(), view.name), where + ": missing");
    h5::Handle group(H5Gopen2(optimizer.get(), view.name.c_str(), H5P_DEFAULT), H5Gclose);
    for (const auto& [name, state] : optimizer_state) {
      h5::Handle dataset = h5::open_dataset(group.get(), name, where);
      const auto dims =
          h5::checked_dims(dataset.get(), int(dims_of(view).size()), H5T_FLOAT, 4, true, where + "/" + name);
      require(dims == dims_of(view), where + "/" + name + ": shape differs");
      h5::read_rows(dataset.get(), H5T_NATIVE_FLOAT, 0, dims[0], state->data() + view.offset, where + "/" + name);
    }
  }
}

}  // namespace lt
