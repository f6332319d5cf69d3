// lidartrain eval: confusion matrix, per-class IoU and mIoU of a semseg checkpoint on a dataset.
#include <cstdio>
#include <iostream>

#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/trainer.hpp"

namespace lt {

int eval_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("checkpoint", po::value<std::string>()->required()->value_name("CKPT"), "checkpoint file")(
      "data", po::value<std::string>()->required()->value_name("DIR"), "dataset with point labels")(
      "json", po::value<std::string>()->value_name("FILE"), "also write the metrics (and confusion matrix) as JSON");
  const ParsedCommand parsed = parse_command("eval", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text("eval", "--checkpoint CKPT --data DIR [--json FILE]",
                              "Per-class IoU and mIoU over the classes present, from a confusion matrix reduced\n"
                              "over ranks (frames are split over the ranks under mpirun).",
                              options);
    return kExitOk;
  }
  const std::string checkpoint = parsed.values["checkpoint"].as<std::string>();
  const std::string data = parsed.values["data"].as<std::string>();
  Semseg model = load_semseg(checkpoint);
  const DatasetReader reader(data);
  const SegmentationMetrics metrics = evaluate_semseg(model, reader, comm);
  if (!comm.is_root()) return kExitOk;
  std::printf("eval: %s on %s\n%s", checkpoint.c_str(), data.c_str(), iou_table(metrics).c_str());
  if (parsed.values.count("json")) {
    JsonWriter json;
    json.begin_object().key("checkpoint").value(checkpoint).key("data").value(data);
    write_metrics(json, metrics);
    json.end_object();
    write_text_file_atomically(parsed.values["json"].as<std::string>(), json.str() + "\n");
  }
  return kExitOk;
}

}  // namespace lt
