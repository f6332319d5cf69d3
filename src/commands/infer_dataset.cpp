#include "src/commands/infer_dataset.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>

#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/label_map.hpp"
#include "src/common/error.hpp"
#include "src/common/json.hpp"
#include "src/models/bevdet.hpp"
#include "src/models/semseg.hpp"
#include "src/train/data.hpp"
#include "src/train/device.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/provenance.hpp"
#include "src/train/trainer.hpp"

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
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  require(!ec, fs::path(path).parent_path().string() + ": cannot create the output directory: " + ec.message());
  write_text_file_atomically(path, bytes);
}

std::string checkpoint_identity(const std::string& path) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  return meta.model + " step " + std::to_string(meta.step) + " " + code_identity(meta.git_sha, meta.git_diff) +
         " written " + meta.created + " dataset " + (meta.dataset_id.empty() ? "unknown" : meta.dataset_id);
}

}  // namespace

// The detections as text: label_2 lines (camera frame) with a calibration, else a header and LiDAR-frame boxes.
std::string boxes_text(const std::vector<Detection>& detections, const KittiCalib* calib) {
  std::string out;
  char line[256];
  if (!calib) out += "# class x y z dx dy dz heading score  (LiDAR frame: m, rad; z at the box centre)\n";
  for (const Detection& d : detections) {
    if (calib) {
      out += kitti_label_line(lidar_box_to_kitti(d.box, *calib, kBoxClassNames[size_t(d.label)]), d.score) + "\n";
      continue;
    }
    std::snprintf(line, sizeof line, "%s %.3f %.3f %.3f %.3f %.3f %.3f %.4f %.4f\n", kBoxClassNames[size_t(d.label)],
                  d.box[0], d.box[1], d.box[2], d.box[3], d.box[4], d.box[5], d.box[6], d.score);
    out += line;
  }
  return out;
}

std::string prediction_path(const std::string& out, const std::string& model, const std::string& id) {
  const std::string rel = safe_relative(id);
  if (model == "semseg") {
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

int infer_dataset(const DatasetInference& job, const Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Model> model;
  std::optional<DatasetReader> reader;
  std::string identity;
  run_agreed(comm, [&] {
    model = load_model(job.checkpoint);
    model->set_backend(choose_device(job.device, comm.local_rank(), "--device"));
    model->freeze_for_inference();
    reader.emplace(job.data);
    identity = checkpoint_identity(job.checkpoint);
  });
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
    fs::create_directories(out, ec);
    require(!ec && fs::is_directory(out), job.out + ": cannot create the output directory" +
                                              (ec ? ": " + ec.message() : std::string(" (a file is in the way)")));
    write_text_file_atomically(mark.string(), identity + "\n");
  });

  const std::vector<std::vector<int64_t>> split = lpt_split(reader->costs(), comm.size());
  const std::vector<int64_t>& mine = split[size_t(comm.rank())];
  auto* semseg = dynamic_cast<Semseg*>(model.get());
  auto* bevdet = dynamic_cast<Bevdet*>(model.get());
  const std::array<uint32_t, kNumSemanticClasses> raw_of = learning_map_inverse();
  int64_t done = 0, skipped = 0;
  double compute_s = 0;
  run_agreed(comm, [&] {
    for (size_t i = 0; i < mine.size(); ++i) {
      const int64_t f = mine[i];
      const std::string path = prediction_path(job.out, model->name(), reader->frame_id(f));
      if (fs::exists(path)) {  // written whole by an earlier run (renamed into place): not read again
        ++skipped;
        continue;
      }
      Frame frame = reader->read(f);
      const auto start = std::chrono::steady_clock::now();
      const PointBatch batch = make_batch({frame});
      std::string bytes;
      if (semseg) {
        const std::vector<uint8_t> labels = predict_labels(semseg->forward(batch, false), batch.num_points());
        std::vector<uint32_t> raw(labels.size());
        std::transform(labels.begin(), labels.end(), raw.begin(), [&](uint8_t id) { return raw_of[id]; });
        bytes.assign(reinterpret_cast<const char*>(raw.data()), raw.size() * sizeof(uint32_t));
      } else {
        bytes = boxes_text(bevdet->detect(batch).front(), nullptr);
      }
      write_whole(path, bytes);
      compute_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ++done;
      if (comm.is_root() && (done % 16 == 0 || i + 1 == mine.size())) {
        const double rate = double(done) / std::max(compute_s, 1e-9);
        std::printf("infer: rank 0 %zu/%zu frames, %.1f frames/s, ETA %.0f s\n", i + 1, mine.size(), rate,
                    double(mine.size() - i - 1) / std::max(rate, 1e-9));
        std::fflush(stdout);
      }
    }
  });
  // Per-rank throughput and the totals, then the manifest.
  const std::vector<std::string> rates =
      comm.gather_text(std::to_string(done) + " " + std::to_string(skipped) + " " + std::to_string(compute_s), 0);
  const std::string dataset_id = dataset_identity(*reader);
  const std::string provenance = provenance_json(comm, fs::absolute(job.data).string(), dataset_id);  // collective
  const double wall_s = comm.max(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  run_agreed(comm, [&] {
    if (!comm.is_root()) return;
    JsonWriter json;
    json.begin_object().key("checkpoint").value(job.checkpoint).key("checkpoint_identity").value(identity);
    json.key("model").value(model->name()).key("dataset").value(fs::absolute(job.data).string());
    json.key("dataset_id").value(dataset_id).key("frames").value(reader->num_frames());
    json.key("command_line").value(command_line()).key("wall_s").value(wall_s);
    json.key("provenance").raw(provenance);  // this binary, its libraries, the ranks' hosts
    json.key("ranks").begin_array();
    int64_t total_done = 0, total_skipped = 0;
    for (size_t r = 0; r < rates.size(); ++r) {
      long long d = 0, s = 0;
      double c = 0;
      std::sscanf(rates[r].c_str(), "%lld %lld %lf", &d, &s, &c);
      total_done += d, total_skipped += s;
      json.begin_object().key("rank").value(int64_t(r)).key("frames").value(int64_t(split[r].size()));
      json.key("done").value(int64_t(d)).key("skipped").value(int64_t(s)).key("compute_s").value(c);
      json.key("frames_per_s").value(c > 0 ? double(d) / c : 0.0).end_object();
    }
    json.end_array().key("done").value(total_done).key("skipped").value(total_skipped).end_object();
    write_text_file_atomically((out / "manifest.json").string(), json.str() + "\n");
    std::printf("infer: %lld frames of %s through %s on %d rank(s): %lld made, %lld already there, %.1f s -> %s\n",
                static_cast<long long>(reader->num_frames()), job.data.c_str(), job.checkpoint.c_str(), comm.size(),
                static_cast<long long>(total_done), static_cast<long long>(total_skipped), wall_s, job.out.c_str());
  });
  return kExitOk;
}

}  // namespace lt
