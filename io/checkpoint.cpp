#include "io/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "io/hdf5_util.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {
constexpr const char* kSchema = "lidartrain.checkpoint";
// Version 2 stores its strings fixed-length (io/hdf5_util.hpp: Strings); version 1 checkpoints, whose
// strings are variable-length, are read (and resumed from) as before.
constexpr int64_t kVersion = 2;

// The string form a checkpoint's version allows; InputError for an unknown version.
h5::Strings checkpoint_strings(hid_t f, const std::string& path) {
  const int64_t version = h5::read_attr_int(f, "version", path);
  require(version == 1 || version == kVersion,
          path + ": checkpoint version " + std::to_string(version) + " is not supported (expected 1 or 2)");
  return version == 1 ? h5::Strings::any : h5::Strings::fixed_only;
}

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
                      const ParamStore& buffers, const OptimizerState& optimizer_state, const CheckpointState& state,
                      const Comm* comm) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  const auto write_tensors = [&](hid_t group, const ParamStore& store, const std::vector<float>& values,
                                 const std::string& where) {
    for (const TensorView& view : store.views())
      h5::write_array(group, view.name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, dims_of(view), dims_of(view)[0],
                      values.data() + view.offset, where);
  };
  const auto fill = [&](hid_t f, const std::string& where) {
    h5::write_attr_string(f, "schema", kSchema, where);
    h5::write_attr_int(f, "version", kVersion, where);
    h5::write_attr_string(f, "model", meta.model, where);
    h5::write_attr_int(f, "step", meta.step, where);
    h5::write_attr_int(f, "epoch", meta.epoch, where);
    h5::write_attr_int(f, "samples_seen", meta.samples_seen, where);
    h5::write_attr_int(f, "world_size", meta.world_size, where);
    h5::write_attr_int(f, "seed", int64_t(meta.seed), where);
    h5::write_attr_string(f, "git_sha", meta.git_sha, where);
    h5::write_attr_string(f, "created", meta.created, where);
    h5::write_attr_string(f, "config", meta.config, where);
    h5::write_attr_string(f, "git_diff", meta.git_diff, where);
    h5::write_attr_string(f, "dataset", meta.dataset, where);
    h5::write_attr_string(f, "dataset_id", meta.dataset_id, where);
    h5::write_attr_string(f, "provenance", meta.provenance, where);
    {
      h5::Handle model = create_group(f, "model", where);
      write_tensors(model.get(), params, params.values(), where);
      h5::Handle buffer_group = create_group(f, "buffers", where);
      write_tensors(buffer_group.get(), buffers, buffers.values(), where);
    }
    if (!optimizer_state.empty()) {
      h5::Handle optimizer = create_group(f, "optimizer", where);
      h5::write_attr_string(optimizer.get(), "type", meta.optimizer_type, where);
      h5::write_attr_int(optimizer.get(), "steps", meta.optimizer_steps, where);
      for (const TensorView& view : params.views()) {
        h5::Handle group = create_group(optimizer.get(), view.name, where);
        for (const auto& [name, values] : optimizer_state)
          h5::write_array(group.get(), name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, dims_of(view), dims_of(view)[0],
                          values->data() + view.offset, where);
      }
    }
    h5::Handle state_group = create_group(f, "state", where);
    const int64_t position[3] = {state.step, state.samples_seen, state.global_batch};
    h5::write_array(state_group.get(), "position", H5T_NATIVE_INT64, H5T_STD_I64LE, {3}, 3, position, where);
    require(state.cost_model_sums.size() == 5 && state.cost_model_history.size() % 3 == 0, where + ": bad state");
    h5::write_array(state_group.get(), "cost_model_sums", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {5}, 5,
                    state.cost_model_sums.data(), where);
    h5::write_array(state_group.get(), "cost_model_history", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE,
                    {hsize_t(state.cost_model_history.size() / 3), 3}, 64, state.cost_model_history.data(), where);
    if (!state.loss_scaler.empty()) {
      require(state.loss_scaler.size() == 2, where + ": bad loss scaler state");
      h5::write_array(state_group.get(), "loss_scaler", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {2}, 2,
                      state.loss_scaler.data(), where);
    }
  };
  // The raw bytes, and a few KB of metadata per tensor.
  const size_t tensors = params.views().size() * (1 + optimizer_state.size()) + buffers.views().size();
  const size_t expected_bytes =
      sizeof(float) * (size_t(params.size()) * (1 + optimizer_state.size()) + size_t(buffers.size())) + 4096 * tensors +
      meta.config.size() + meta.provenance.size();
  // Every rank holds the same parameters and state: rank 0 writes the file and every rank learns the
  // outcome (a WriteError on each of them when it failed), so none is left waiting in a collective.
  if (comm)
    run_agreed(*comm, [&] {
      if (comm->is_root()) h5::create_file_atomically(path, fill, expected_bytes);
    });
  else
    h5::create_file_atomically(path, fill, expected_bytes);
}

CheckpointState read_checkpoint_state(const std::string& path) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  h5::Handle file = h5::open_file_readonly(path);
  const hid_t f = file.get();
  require(h5::has_link(f, "state"), path + ": missing group /state");
  h5::Handle group(H5Gopen2(f, "state", H5P_DEFAULT), H5Gclose);
  CheckpointState state;
  int64_t position[3];
  {
    h5::Handle dataset = h5::open_dataset(group.get(), "position", path);
    const auto dims = h5::checked_dims(dataset.get(), 1, H5T_INTEGER, 8, true, path + ": /state/position");
    require(dims[0] == 3, path + ": /state/position: expected 3 values");
    h5::read_rows(dataset.get(), H5T_NATIVE_INT64, 0, 3, position, path + ": /state/position");
  }
  state.step = position[0], state.samples_seen = position[1], state.global_batch = position[2];
  require(state.step >= 0 && state.samples_seen >= 0 && state.global_batch > 0,
          path + ": /state/position: negative step or position, or no global batch");
  {
    h5::Handle dataset = h5::open_dataset(group.get(), "cost_model_sums", path);
    const auto dims = h5::checked_dims(dataset.get(), 1, H5T_FLOAT, 8, true, path + ": /state/cost_model_sums");
    require(dims[0] == 5, path + ": /state/cost_model_sums: expected 5 values");
    h5::read_rows(dataset.get(), H5T_NATIVE_DOUBLE, 0, 5, state.cost_model_sums.data(), path);
  }
  {
    h5::Handle dataset = h5::open_dataset(group.get(), "cost_model_history", path);
    const auto dims = h5::checked_dims(dataset.get(), 2, H5T_FLOAT, 8, true, path + ": /state/cost_model_history");
    require(dims[1] == 3, path + ": /state/cost_model_history: expected 3 columns");
    state.cost_model_history.resize(size_t(dims[0]) * 3);
    h5::read_rows(dataset.get(), H5T_NATIVE_DOUBLE, 0, dims[0], state.cost_model_history.data(), path);
  }
  if (h5::has_link(group.get(), "loss_scaler")) {  // fp16 runs only
    h5::Handle dataset = h5::open_dataset(group.get(), "loss_scaler", path);
    const auto dims = h5::checked_dims(dataset.get(), 1, H5T_FLOAT, 8, true, path + ": /state/loss_scaler");
    require(dims[0] == 2, path + ": /state/loss_scaler: expected 2 values (scale, steps since an overflow)");
    state.loss_scaler.resize(2);
    h5::read_rows(dataset.get(), H5T_NATIVE_DOUBLE, 0, 2, state.loss_scaler.data(), path + ": /state/loss_scaler");
    const double scale = state.loss_scaler[0], good = state.loss_scaler[1];
    require(std::isfinite(scale) && scale > 0 && good >= 0 && good < 9.0e15 && good == std::floor(good),
            path + ": /state/loss_scaler: the scale must be finite and > 0, the step count a whole number >= 0");
  }
  return state;
}

bool is_checkpoint_file(const std::string& path) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || H5Fis_hdf5(path.c_str()) <= 0) return false;
  try {
    h5::Handle file = h5::open_file_readonly(path);
    return h5::has_attr(file.get(), "schema") && h5::has_attr(file.get(), "version") &&
           h5::read_attr_string(file.get(), "schema", path, checkpoint_strings(file.get(), path)) == kSchema;
  } catch (const InputError&) {
    return false;
  }
}

std::vector<std::pair<std::string, int64_t>> checkpoint_tensor_sizes(const std::string& path,
                                                                     const std::string& group_name) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  h5::Handle file = h5::open_file_readonly(path);
  require(h5::has_link(file.get(), group_name), path + ": missing group /" + group_name);
  h5::Handle group(H5Gopen2(file.get(), group_name.c_str(), H5P_DEFAULT), H5Gclose);
  std::vector<std::pair<std::string, int64_t>> sizes;
  H5Literate(
      group.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t g, const char* name, const H5L_info_t*, void* data) -> herr_t {
        const hid_t dataset = H5Dopen2(g, name, H5P_DEFAULT);
        if (dataset < 0) return 0;
        const hid_t space = H5Dget_space(dataset);
        static_cast<std::vector<std::pair<std::string, int64_t>>*>(data)->emplace_back(
            name, int64_t(H5Sget_simple_extent_npoints(space)));
        H5Sclose(space);
        H5Dclose(dataset);
        return 0;
      },
      &sizes);
  return sizes;
}

void verify_checkpoint(const std::string& path) {
  read_checkpoint_meta(path);  // the schema and the root attributes
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  h5::Handle file = h5::open_file_readonly(path);
  for (const char* group : {"model", "buffers", "optimizer", "state"})
    require(h5::has_link(file.get(), group), path + ": missing group /" + group);
  // A checkpoint of a run that diverged is no place to resume from: non-finite values count as damage.
  h5::read_every_dataset(file.get(), path, /*require_finite=*/true);
}

std::string find_resume_checkpoint(const std::string& dir, std::vector<std::string>& skipped) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      // Left by a writer that was killed before its rename: never a checkpoint.
      skipped.push_back(entry.path().string() + ": half-written (a killed writer's), removed");
      fs::remove(entry.path(), ec);
    } else if (name.rfind("ckpt-", 0) == 0 && entry.path().extension() == ".h5") {
      candidates.push_back(entry.path());
    }
  }
  std::sort(candidates.rbegin(), candidates.rend());  // ckpt-<8-digit step>: newest first
  for (const fs::path& candidate : candidates) {
    try {
      verify_checkpoint(candidate.string());
      return candidate.string();
    } catch (const InputError& e) {
      skipped.push_back(std::string(e.what()) + ": damaged, skipped");
    }
  }
  return "";
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  require(fs::is_regular_file(path), path + ": no such checkpoint");
  h5::Handle file = h5::open_file_readonly(path);
  const hid_t f = file.get();
  const h5::Strings strings = checkpoint_strings(f, path);
  const std::string schema = h5::read_attr_string(f, "schema", path, strings);
  require(schema == kSchema, path + ": schema is '" + schema + "', expected '" + kSchema + "'");
  CheckpointMeta meta;
  meta.model = h5::read_attr_string(f, "model", path, strings);
  meta.step = h5::read_attr_int(f, "step", path);
  meta.epoch = h5::read_attr_int(f, "epoch", path);
  meta.samples_seen = h5::read_attr_int(f, "samples_seen", path);
  meta.world_size = h5::read_attr_int(f, "world_size", path);
  meta.seed = uint64_t(h5::read_attr_int(f, "seed", path));
  meta.git_sha = h5::read_attr_string(f, "git_sha", path, strings);
  meta.created = h5::read_attr_string(f, "created", path, strings);
  meta.config = h5::read_attr_string(f, "config", path, strings);
  // Provenance: absent in checkpoints written before it was recorded.
  for (auto [name, field] : {std::pair<const char*, std::string*>{"git_diff", &meta.git_diff},
                             {"dataset", &meta.dataset},
                             {"dataset_id", &meta.dataset_id},
                             {"provenance", &meta.provenance}})
    if (h5::has_attr(f, name)) *field = h5::read_attr_string(f, name, path, strings);
  if (h5::has_link(f, "optimizer")) {
    h5::Handle optimizer(H5Gopen2(f, "optimizer", H5P_DEFAULT), H5Gclose);
    meta.optimizer_type = h5::read_attr_string(optimizer.get(), "type", path, strings);
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

std::string hdf5_library_version() {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

}  // namespace lt
