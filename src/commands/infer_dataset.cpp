#include "src/commands/infer_dataset.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <optional>
#include <sstream>

#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/label_map.hpp"
#include "io/predictions.hpp"
#include "io/prefetch.hpp"
#include "io/raw_formats.hpp"
#include "src/common/error.hpp"
#include "src/common/json.hpp"
#include "src/common/stop_signal.hpp"
#include "src/models/registry.hpp"
#include "src/train/data.hpp"
#include "src/train/device.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/provenance.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {

// A frame id as a relative path that stays inside the output directory: no empty, "." or ".." parts.
std::string safe_relative(const std::string& id) {
  std::string out;
  size_t start = 0;
  while (start <= id.size()) {
    const size_t end = std::min(id.find('/', start), id.size());
    std::string part = id.substr(start, end - start);
    if (!part.empty() && part != "." && part != "..") out += (out.empty() ? "" : "/") + part;
    start = end + 1;
  }
  return out.empty() ? "frame" : out;
}

// Writes through path.tmp and a rename: a file at `path` is always whole.
void write_whole(const std::string& path, const std::string& bytes) {
  create_directories(fs::path(path).parent_path().string(), "output directory");
  write_file_atomically(path, bytes);
}

std::string checkpoint_identity(const std::string& path) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  return meta.model + " step " + std::to_string(meta.step) + " " + code_identity(meta.git_sha, meta.git_diff) +
         " written " + meta.created + " dataset " + (meta.dataset_id.empty() ? "unknown" : meta.dataset_id);
}

}  // namespace

// Every float to 9 significant digits, which reads back as the same float32.
std::string boxes_text(const std::vector<Detection>& detections) {
  std::string out = "# class x y z dx dy dz heading score  (LiDAR frame: m, rad; z at the box centre)\n";
  char line[320];
  for (const Detection& d : detections) {
    std::snprintf(line, sizeof line, "%s %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", kBoxClassNames[size_t(d.label)],
                  double(d.box[0]), double(d.box[1]), double(d.box[2]), double(d.box[3]), double(d.box[4]),
                  double(d.box[5]), double(d.box[6]), double(d.score));
    out += line;
  }
  return out;
}

std::string label_2_text(const std::vector<Detection>& detections, const KittiCalib& calib, const KittiCamera& camera) {
  std::string out;
  for (const Detection& d : detections) {
    const std::optional<KittiObject> object =
        kitti_result(d.box, calib, camera, kBoxClassNames[size_t(d.label)], d.score);
    if (object) out += kitti_label_line(*object, d.score) + "\n";
  }
  return out;
}

std::vector<Detection> parse_boxes_text(const std::string& text, const std::string& where) {
  std::vector<Detection> detections;
  std::istringstream in(text);
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    const std::string at = where + ": line " + std::to_string(line_number);
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    Detection d;
    for (int c = 1; c < kNumBoxClasses; ++c)
      if (name == kBoxClassNames[size_t(c)]) d.label = c;
    require(d.label != 0, at + ": '" + name + "' is not Car, Pedestrian or Cyclist");
    std::string token;
    for (int k = 0; k < 8; ++k) {
      require(bool(fields >> token), at + ": expected 8 numbers after the class");
      char* end = nullptr;
      const float v = std::strtof(token.c_str(), &end);
      require(end == token.c_str() + token.size() && std::isfinite(v), at + ": '" + token + "' is not a finite number");
      (k < 7 ? d.box[size_t(k)] : d.score) = v;
    }
    require(!(fields >> token), at + ": more than 8 numbers after the class");
    detections.push_back(d);
  }
  return detections;
}

std::string label2_path(const std::string& out, const std::string& id, int64_t index) {
  return (fs::path(out) / "label_2" / (kitti_frame_name(id, index) + ".txt")).string();
}

std::string predictions_file_path(const std::string& out, int rank, int ranks) {
  char name[64];
  std::snprintf(name, sizeof name, "rank-%05d-of-%05d.h5", rank, ranks);
  return (fs::path(out) / "predictions" / name).string();
}

std::string prediction_path(const std::string& out, ModelOutput output, const std::string& id) {
  const std::string rel = safe_relative(id);
  if (output == ModelOutput::point_labels) {
    const fs::path p(rel);
    std::string seq = p.parent_path().string(), name = p.filename().string();
    if (seq.rfind("sequences/", 0) == 0 && seq.find('/', 10) == std::string::npos) seq = seq.substr(10);
    std::replace(seq.begin(), seq.end(), '/', '_');
    if (seq.empty()) seq = "00";
    return (fs::path(out) / "sequences" / seq / "predictions" / (name + ".label")).string();
  }
  return (fs::path(out) / "boxes" / (rel + ".txt")).string();
}

std::vector<std::vector<int64_t>> lpt_split(const std::vector<int64_t>& costs, int ranks) {
  std::vector<int64_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return costs[size_t(a)] > costs[size_t(b)]; });
  std::vector<std::vector<int64_t>> split(static_cast<size_t>(ranks));
  std::vector<int64_t> load(static_cast<size_t>(ranks), 0);
  for (int64_t f : order) {
    const size_t r = size_t(std::min_element(load.begin(), load.end()) - load.begin());
    split[r].push_back(f);
    load[r] += std::max<int64_t>(costs[size_t(f)], 1);
  }
  for (auto& frames : split) std::sort(frames.begin(), frames.end());
  return split;
}

namespace {

// Frame f's outputs, made now or read back from an earlier run's files; false when they are not all
// there whole (then the frame is made again).
struct FrameOutputs {
  std::string main;    // .label (point labels) or boxes/<id>.txt (boxes): written last, so it marks done
  std::string label2;  // boxes with --boxes label_2: label_2/<frame>.txt
};

bool read_back(const FrameOutputs& outputs, ModelOutput output, int64_t f, const DatasetReader& reader,
               const LearningMap& learning_map, FramePrediction& prediction) {
  if (!fs::exists(outputs.main) || (!outputs.label2.empty() && !fs::exists(outputs.label2))) return false;
  try {
    if (output == ModelOutput::point_labels) {
      const std::vector<uint32_t> raw = read_label_file(outputs.main);
      require(int64_t(raw.size()) == reader.points_per_frame()[size_t(f)],
              outputs.main + ": " + std::to_string(raw.size()) + " labels for " +
                  std::to_string(reader.points_per_frame()[size_t(f)]) + " points");
      prediction.frame_index = f;
      prediction.id = reader.frame_id(f);
      prediction.labels.resize(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        const int id = learning_map.to_train(raw[i]);
        require(id > 0 && id < kNumSemanticClasses, outputs.main + ": point " + std::to_string(i) + ": raw id " +
                                                        std::to_string(raw[i]) + " is not a predicted class");
        prediction.labels[i] = uint8_t(id);
      }
    } else {
      std::ifstream in(outputs.main, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      prediction = prediction_of(f, reader.frame_id(f), parse_boxes_text(text, outputs.main));
    }
    return true;
  } catch (const InputError& e) {
    std::fprintf(stderr, "lidartrain infer: warning: %s: making frame %s again\n", e.what(),
                 reader.frame_id(f).c_str());
    return false;
  }
}

// Writes frame f's outputs (read_back's counterpart) and returns what its predictions file records: a
// .label file of raw SemanticKITTI ids (point labels), or the boxes as text in the LiDAR frame and, with
// label_2, KITTI label_2 lines through the frame's calibration (boxes). The main file goes last: it marks
// the frame done.
FramePrediction write_outputs(const FrameOutputs& outputs, ModelOutput output, Prediction predicted, const Frame& frame,
                              int64_t f, const std::string& id) {
  if (output == ModelOutput::point_labels) {
    static const std::array<uint32_t, kNumSemanticClasses> raw_of = learning_map_inverse();
    std::vector<uint32_t> raw(predicted.labels.size());
    std::transform(predicted.labels.begin(), predicted.labels.end(), raw.begin(),
                   [&](uint8_t label) { return raw_of[label]; });
    write_whole(outputs.main, std::string(reinterpret_cast<const char*>(raw.data()), raw.size() * sizeof(uint32_t)));
    FramePrediction prediction;
    prediction.frame_index = f;
    prediction.id = id;
    prediction.labels = std::move(predicted.labels);
    return prediction;
  }
  const std::vector<Detection>& detections = predicted.detections;
  if (!outputs.label2.empty()) {
    write_whole(outputs.label2,
                label_2_text(detections, calib_from_values(frame.calib), camera_from_values(frame.camera)));
  }
  write_whole(outputs.main, boxes_text(detections));
  return prediction_of(f, id, detections);
}

// manifest.json: what was inferred with what, per rank's frames and throughput (rank 0 writes it).
struct ManifestFacts {
  std::string identity, dataset_id, outputs, provenance;
  int64_t frames = 0;
  double wall_s = 0;
  std::vector<std::vector<int64_t>> split;  // the frames of each rank
  std::vector<std::string> rates;           // per rank: "done skipped compute_s"
};

void write_manifest(const DatasetInference& job, const Model& model, const ManifestFacts& facts) {
  const fs::path out(job.out);
  JsonWriter json;
  json.begin_object().key("checkpoint").value(job.checkpoint).key("checkpoint_identity").value(facts.identity);
  json.key("model").value(model.name()).key("dataset").value(fs::absolute(job.data).string());
  json.key("dataset_id").value(facts.dataset_id).key("frames").value(facts.frames);
  json.key("outputs").value(facts.outputs);
  const int ranks = int(facts.rates.size());
  json.key("predictions").begin_array();
  for (int r = 0; r < ranks; ++r) json.value(fs::relative(predictions_file_path(job.out, r, ranks), out).string());
  json.end_array();
  json.key("command_line").value(command_line()).key("wall_s").value(facts.wall_s);
  json.key("provenance").raw(facts.provenance);  // this binary, its libraries, the ranks' hosts
  json.key("ranks").begin_array();
  int64_t total_done = 0, total_skipped = 0;
  for (size_t r = 0; r < facts.rates.size(); ++r) {
    long long d = 0, s = 0;
    double c = 0;
    std::sscanf(facts.rates[r].c_str(), "%lld %lld %lf", &d, &s, &c);
    total_done += d, total_skipped += s;
    json.begin_object().key("rank").value(int64_t(r)).key("frames").value(int64_t(facts.split[r].size()));
    json.key("done").value(int64_t(d)).key("skipped").value(int64_t(s)).key("compute_s").value(c);
    json.key("frames_per_s").value(c > 0 ? double(d) / c : 0.0).end_object();
  }
  json.end_array().key("done").value(total_done).key("skipped").value(total_skipped).end_object();
  write_text_file_atomically((out / "manifest.json").string(), json.str() + "\n");
  std::printf("infer: %lld frames of %s through %s on %d rank(s): %lld made, %lld already there, %.1f s -> %s\n",
              static_cast<long long>(facts.frames), job.data.c_str(), job.checkpoint.c_str(), ranks,
              static_cast<long long>(total_done), static_cast<long long>(total_skipped), facts.wall_s, job.out.c_str());
}

int infer_every_frame(const DatasetInference& job, const Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  require(job.boxes == "auto" || job.boxes == "label_2" || job.boxes == "lidar",
          "--boxes: '" + job.boxes + "' is not auto, label_2 or lidar");
  install_stop_signals();
  std::unique_ptr<Model> model;
  std::optional<DatasetReader> reader;
  std::string identity, dataset_id;
  bool label2 = false;
  run_agreed(comm, [&] {
    model = load_model(job.checkpoint);
    require(
        model->output() == ModelOutput::boxes || job.boxes == "auto",
        "--boxes: only for a " + model_names(ModelOutput::boxes) + " checkpoint (this one is " + model->name() + ")");
    model->set_backend(choose_device(job.device, comm.local_rank(), "--device"));
    use_precision(model->backend(), job.precision, "--precision");
    model->freeze_for_inference();
    reader.emplace(job.data);
    require(job.boxes != "label_2" || reader->kind().has_calib,
            job.data +
                ": no calibrations in this dataset (convert --format kitti stores them from calib/), which "
                "--boxes label_2 needs");
    require(job.boxes != "label_2" || reader->kind().has_camera,
            job.data +
                ": its calibrations have no P2 (the camera's projection), which --boxes label_2 needs for the "
                "results' 2D boxes; convert it again from calib/ files with P2");
    label2 = model->output() == ModelOutput::boxes && job.boxes != "lidar" && reader->kind().has_camera;
    if (comm.is_root() && model->output() == ModelOutput::boxes && job.boxes == "auto" && reader->kind().has_calib &&
        !reader->kind().has_camera)
      std::fprintf(stderr, "lidartrain infer: warning: %s: its calibrations have no P2: no label_2 results\n",
                   job.data.c_str());
    identity = checkpoint_identity(job.checkpoint);
    dataset_id = dataset_identity(*reader);
  });
  require_one_rank_per_gpu(comm, model->backend());
  // The output directory: new, or holding this checkpoint's outputs (a rerun), or --force.
  const fs::path out(job.out), mark = out / "CHECKPOINT";
  run_agreed(comm, [&] {
    if (!comm.is_root()) return;
    std::error_code ec;
    if (fs::exists(mark)) {
      std::ifstream in(mark);
      std::string before;
      std::getline(in, before);
      require(before == identity || job.force, job.out + ": holds the predictions of another checkpoint (" + before +
                                                   "); this is " + identity + " (--force to write over them)");
    } else if (fs::exists(out) && !fs::is_empty(out, ec)) {
      require(job.force, job.out + ": not empty and not an inference output (--force to use it)");
    }
    create_directories((out / "predictions").string(), "output directory");
    // The per-rank files are made from the per-frame outputs at the end of every run: those of an earlier
    // run (another rank count, perhaps) go now, so that the directory never holds a mixed set.
    for (const auto& entry : fs::directory_iterator(out / "predictions")) fs::remove(entry.path(), ec);
    write_text_file_atomically(mark.string(), identity + "\n");
  });

  const std::vector<std::vector<int64_t>> split = lpt_split(reader->costs(), comm.size());
  const std::vector<int64_t>& mine = split[size_t(comm.rank())];
  const ModelOutput output = model->output();
  const LearningMap learning_map = LearningMap::semantic_kitti();
  PredictionsHeader header;
  header.model = model->name();
  header.checkpoint_identity = identity;
  header.dataset_id = dataset_id;
  header.rank = comm.rank();
  header.ranks = comm.size();
  header.point_labels = output == ModelOutput::point_labels;
  if (!header.point_labels) header.point_range = model->point_range();
  int64_t done = 0, skipped = 0;
  double compute_s = 0;
  bool stopped = false;
  run_agreed(comm, [&] {
    PredictionsWriter predictions(predictions_file_path(job.out, comm.rank(), comm.size()), header);
    // The frames to make (their outputs are not all there): read and batched ahead on the loader thread
    // while the model runs on the frame before.
    std::vector<FrameOutputs> outputs(mine.size());
    std::vector<int64_t> to_make;
    for (size_t i = 0; i < mine.size(); ++i) {
      const std::string& id = reader->frame_id(mine[i]);
      outputs[i] = {prediction_path(job.out, output, id), label2 ? label2_path(job.out, id, mine[i]) : ""};
      if (!fs::exists(outputs[i].main) || (label2 && !fs::exists(outputs[i].label2))) to_make.push_back(mine[i]);
    }
    struct Loaded {
      Frame frame;
      PointBatch batch;
    };
    const auto load = [&](int64_t f) {
      Loaded loaded{reader->read(f), {}};
      loaded.batch = make_batch({loaded.frame});
      return loaded;
    };
    PrefetchLoader loader([&](int64_t k) { return load(to_make[size_t(k)]); }, 0, int64_t(to_make.size()));
    size_t next_made = 0;
    for (size_t i = 0; i < mine.size(); ++i) {
      if (stop_signal() != 0) {
        stopped = true;  // every frame made so far is whole on disk; the rerun continues from there
        return;
      }
      const int64_t f = mine[i];
      FramePrediction prediction;
      const bool make = next_made < to_make.size() && to_make[next_made] == f;
      if (!make && read_back(outputs[i], output, f, *reader, learning_map, prediction)) {
        predictions.add(prediction);
        ++skipped;
        continue;
      }
      // Made by the loader, or (outputs there but damaged: read_back warned) here.
      const Loaded loaded = make ? (++next_made, loader.next()) : load(f);
      const auto start = std::chrono::steady_clock::now();
      prediction = write_outputs(outputs[i], output, std::move(model->predict(loaded.batch).front()), loaded.frame, f,
                                 reader->frame_id(f));
      predictions.add(prediction);
      compute_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ++done;
      if (comm.is_root() && (done % 16 == 0 || i + 1 == mine.size())) {
        const double rate = double(done) / std::max(compute_s, 1e-9);
        std::printf("infer: rank 0 %zu/%zu frames, %.1f frames/s, ETA %.0f s\n", i + 1, mine.size(), rate,
                    double(mine.size() - i - 1) / std::max(rate, 1e-9));
        std::fflush(stdout);
      }
    }
    predictions.commit();
  });
  if (comm.max(stopped ? 1.0 : 0.0) > 0) {
    if (comm.is_root()) {
      std::printf(
          "infer: stopping (%s): every frame made so far is on disk; rerun the same command to continue "
          "(exit %d: requeue)\n",
          stop_signal_name(), int(kExitRequeue));
      std::fflush(stdout);
    }
    return kExitRequeue;
  }
  // Per-rank throughput and the totals, then the manifest.
  const std::vector<std::string> rates =
      comm.gather_text(std::to_string(done) + " " + std::to_string(skipped) + " " + std::to_string(compute_s), 0);
  const std::string provenance = provenance_json(comm, fs::absolute(job.data).string(), dataset_id);  // collective
  const double wall_s = comm.max(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  ManifestFacts facts{identity,
                      dataset_id,
                      output == ModelOutput::point_labels ? "semantickitti_label"
                      : label2                            ? "kitti_label_2+lidar_boxes"
                                                          : "lidar_boxes",
                      provenance,
                      reader->num_frames(),
                      wall_s,
                      split,
                      rates};
  run_agreed(comm, [&] {
    if (comm.is_root()) write_manifest(job, *model, facts);
  });
  return kExitOk;
}

}  // namespace

int infer_dataset(const DatasetInference& job, const Comm& comm) {
  try {
    return infer_every_frame(job, comm);
  } catch (const WriteError& e) {
    // Every frame's files were written whole before the next began: a rerun keeps them.
    throw e.with_context(
        "the frames written so far are whole and kept; rerun the same command, once there is "
        "room, to make the rest");
  }
}

}  // namespace lt
