// lidartrain eval: a checkpoint on a dataset. semseg: confusion matrix, per-class IoU and mIoU; bevdet:
// BEV AP (R40) at rotated-IoU thresholds and centre-distance AP per class, and KITTI's protocol where the
// dataset has cameras (src/train/kitti_eval.hpp).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/predictions.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/models/registry.hpp"
#include "src/train/detection_eval.hpp"
#include "src/train/device.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/provenance.hpp"

namespace lt {
namespace fs = std::filesystem;

int eval_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("checkpoint", po::value<std::string>()->value_name("CKPT"), "checkpoint file")(
      "predictions", po::value<std::string>()->value_name("DIR"),
      "instead of --checkpoint: the output directory of infer --data (its predictions/*.h5), scored without "
      "running the model; or a directory of KITTI results (label_2/<frame>.txt, from any tool), scored by "
      "KITTI's protocol")("data", po::value<std::string>()->required()->value_name("DIR"),
                          "dataset with point labels (semseg) or boxes (bevdet)")(
      "iou", po::value<std::string>()->value_name("CAR,PED,CYC"),
      "bevdet: BEV IoU thresholds per class, or one for all (default 0.7,0.5,0.5)")(
      "device", po::value<std::string>()->default_value("auto")->value_name("DEV"),
      "auto | cpu | cuda (auto: this rank's GPU when it has one)")(
      "precision", po::value<std::string>()->default_value("fp32")->value_name("P"),
      "fp32 | bf16 | fp16: what the GEMMs read their inputs as (cuda; accumulation in fp32)")(
      "json", po::value<std::string>()->value_name("FILE"), "also write the metrics as JSON");
  const ParsedCommand parsed = parse_command("eval", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text(
          "eval",
          "(--checkpoint CKPT | --predictions DIR) --data DIR [--iou T] [--device DEV] [--precision P] "
          "[--json FILE]",
          "semseg: per-class IoU and mIoU over the classes present, from a confusion matrix\n"
          "reduced over ranks. bevdet: per class, AP in BEV with 40 recall points at rotated IoU\n"
          "0.7 (Car), 0.5 (Pedestrian, Cyclist) and nuScenes centre-distance AP at 0.5, 1, 2,\n"
          "4 m; on datasets with cameras (KITTI, synth) also KITTI's protocol: bbox/BEV/3D/AOS AP\n"
          "at Easy/Moderate/Hard, R11 and R40, as OpenPCDet prints it. Frames are split over the\n"
          "ranks under mpirun. --predictions scores what infer --data stored, with the numbers\n"
          "--checkpoint gives on the same frames, or label_2 result files (DIR/label_2/*.txt).",
          options);
    return kExitOk;
  }
  require(parsed.values.count("checkpoint") + parsed.values.count("predictions") == 1,
          "--checkpoint CKPT or --predictions DIR: give one of them");
  const std::string data = parsed.values["data"].as<std::string>();
  std::vector<double> iou;
  if (parsed.values.count("iou")) {
    iou = parse_finite_doubles(parsed.values["iou"].as<std::string>(), "iou");
    require(iou.size() == 1 || iou.size() == 3, "--iou: expected one threshold or three (Car,Pedestrian,Cyclist)");
    for (double t : iou) require(t > 0 && t <= 1, "--iou: thresholds must be in (0, 1]");
    if (iou.size() == 1) iou.assign(3, iou[0]);
  }
  if (parsed.values.count("predictions")) {
    require(parsed.values["device"].defaulted() && parsed.values["precision"].defaulted(),
            "--device, --precision: --predictions runs no model");
    const std::string dir = parsed.values["predictions"].as<std::string>();
    const fs::path files = fs::path(dir) / "predictions";
    if (!fs::exists(files) && fs::is_directory(fs::path(dir) / "label_2")) {
      // KITTI results (label_2/<frame>.txt) from anywhere: KITTI's protocol only.
      require(iou.empty(), "--iou: the KITTI protocol's thresholds are its own (label_2 results)");
      const DatasetReader reader(data);
      const KittiMetrics m = evaluate_kitti_results(dir, reader, comm);
      if (!comm.is_root()) return kExitOk;
      JsonWriter json;
      json.begin_object().key("predictions").value(dir).key("data").value(data);
      write_kitti_metrics(json, m);
      json.end_object();
      std::printf("eval: label_2 results %s on %s (KITTI protocol, camera field of view)\n%s", dir.c_str(),
                  data.c_str(), kitti_table(m).c_str());
      if (parsed.values.count("json"))
        write_text_file_atomically(parsed.values["json"].as<std::string>(), json.str() + "\n");
      return kExitOk;
    }
    const PredictionsReader predictions(files.string());
    require(iou.empty() || !predictions.header().point_labels,
            "--iou: only for " + model_names(ModelOutput::boxes) + " predictions");
    const DatasetReader reader(data);
    JsonWriter json;
    json.begin_object().key("predictions").value(dir).key("data").value(data);
    const std::string table = evaluate_predictions(predictions, files.string(), reader, data, comm, json, iou);
    json.end_object();
    if (!comm.is_root()) return kExitOk;
    std::printf("eval: predictions %s (%s, %s) on %s\n%s", dir.c_str(), predictions.header().model.c_str(),
                predictions.header().checkpoint_identity.c_str(), data.c_str(), table.c_str());
    if (parsed.values.count("json"))
      write_text_file_atomically(parsed.values["json"].as<std::string>(), json.str() + "\n");
    return kExitOk;
  }
  const std::string checkpoint = parsed.values["checkpoint"].as<std::string>();
  const std::unique_ptr<Model> model = load_model(checkpoint);
  if (comm.is_root()) {
    // The model code: a checkpoint evaluated by another commit may not mean what it meant (the data is
    // expected to differ: a validation set).
    const CheckpointMeta meta = read_checkpoint_meta(checkpoint);
    for (const std::string& warning :
         provenance_differences(checkpoint, meta.git_sha, meta.git_diff, meta.dataset, "", data, ""))
      std::fprintf(stderr, "lidartrain eval: warning: %s\n", warning.c_str());
  }
  run_agreed(comm, [&] {
    model->set_backend(choose_device(parsed.values["device"].as<std::string>(), comm.local_rank(), "--device"));
  });
  use_precision(model->backend(), parse_precision(parsed.values["precision"].as<std::string>(), "--precision"),
                "--precision");
  require_one_rank_per_gpu(comm, model->backend());
  model->freeze_for_inference();
  require(iou.empty() || model->output() == ModelOutput::boxes,
          "--iou: only for a " + model_names(ModelOutput::boxes) + " checkpoint");
  const DatasetReader reader(data);
  JsonWriter json;
  json.begin_object().key("checkpoint").value(checkpoint).key("data").value(data).key("model").value(model->name());
  const std::string table = evaluate_model(*model, reader, comm, json, iou);
  json.end_object();
  if (!comm.is_root()) return kExitOk;
  std::printf("eval: %s (%s) on %s\n%s", checkpoint.c_str(), model->name().c_str(), data.c_str(), table.c_str());
  if (parsed.values.count("json")) {
    write_text_file_atomically(parsed.values["json"].as<std::string>(), json.str() + "\n");
  }
  return kExitOk;
}

}  // namespace lt
