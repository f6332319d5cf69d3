#include "src/train/metrics.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "io/atomic_file.hpp"

namespace lt {

std::string prometheus_text(int64_t step, int64_t steps, double loss, double lr, double samples_per_s, double imbalance,
                            const Comm::Spread& spread, double elapsed_s) {
  std::string out;
  char line[256];
  const auto gauge = [&](const char* name, const char* help, double value) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s gauge\n%s %.9g\n", name, help, name, name, value);
    out += line;
  };
  gauge("lidartrain_step", "Optimizer steps done.", double(step));
  gauge("lidartrain_steps_total", "Optimizer steps the run will make.", double(steps));
  gauge("lidartrain_loss", "Training loss, mean since the previous report.", loss);
  gauge("lidartrain_learning_rate", "Learning rate of the last step.", lr);
  gauge("lidartrain_samples_per_second", "Training frames per second, all ranks.", samples_per_s);
  gauge("lidartrain_imbalance", "Straggler imbalance: max / mean over ranks of compute time.", imbalance);
  gauge("lidartrain_elapsed_seconds", "Seconds since training started.", elapsed_s);
  out += "# HELP lidartrain_phase_seconds Seconds per phase of the last step, over ranks.\n";
  out += "# TYPE lidartrain_phase_seconds gauge\n";
  for (int i = 0; i <= StepTimes::kCompute; ++i) {
    std::string phase = StepTimes::kNames[i];
    phase.resize(phase.size() - 2);  // without "_s"
    const double values[3] = {spread.min[size_t(i)], spread.mean[size_t(i)], spread.max[size_t(i)]};
    const char* stats[3] = {"min", "mean", "max"};
    for (int k = 0; k < 3; ++k) {
      std::snprintf(line, sizeof line, "lidartrain_phase_seconds{phase=\"%s\",over_ranks=\"%s\"} %.9g\n", phase.c_str(),
                    stats[k], values[k]);
      out += line;
    }
  }
  return out;
}

void trim_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  std::string kept;
  for (std::string line; std::getline(in, line);) {
    const size_t at = line.find("\"step\":");
    if (at != std::string::npos && std::strtoll(line.c_str() + at + 7, nullptr, 10) > step) continue;
    kept += line + "\n";
  }
  write_text_file_atomically(path, kept);
}

std::string duration_text(double seconds) {
  char text[32];
  const int s = int(seconds + 0.5);
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%dh%02dm", s / 3600, (s % 3600) / 60);
  else
    std::snprintf(text, sizeof text, "%dm%02ds", s / 60, s % 60);
  return text;
}

}  // namespace lt
