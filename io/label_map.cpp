#include "io/label_map.hpp"

#include <fstream>
#include <regex>

#include "src/common/error.hpp"

namespace lt {

LearningMap::LearningMap() : table_(kMaxRawId + 1, int16_t(kUnknownRawId)) {}

void LearningMap::set(uint32_t raw_id, int train_id, const std::string& where) {
  require(raw_id <= uint32_t(kMaxRawId), where + ": raw id " + std::to_string(raw_id) + " exceeds 16 bits");
  require(
      train_id >= 0 && train_id < kNumSemanticClasses,
      where + ": training id " + std::to_string(train_id) + " outside 0.." + std::to_string(kNumSemanticClasses - 1));
  table_[raw_id] = int16_t(train_id);
}

LearningMap LearningMap::semantic_kitti() {
  static constexpr int kPairs[][2] = {{0, 0},   {1, 0},   {10, 1},  {11, 2},  {13, 5},  {15, 3},  {16, 5},
                                      {18, 4},  {20, 5},  {30, 6},  {31, 7},  {32, 8},  {40, 9},  {44, 10},
                                      {48, 11}, {49, 12}, {50, 13}, {51, 14}, {52, 0},  {60, 9},  {70, 15},
                                      {71, 16}, {72, 17}, {80, 18}, {81, 19}, {99, 0},  {252, 1}, {253, 7},
                                      {254, 6}, {255, 8}, {256, 5}, {257, 5}, {258, 4}, {259, 5}};
  LearningMap map;
  for (const auto& pair : kPairs) map.set(uint32_t(pair[0]), pair[1], "built-in learning_map");
  return map;
}

LearningMap LearningMap::from_yaml_file(const std::string& path) {
  std::ifstream in(path);
  require(bool(in), path + ": cannot open label map");
  LearningMap map;
  const std::regex entry(R"(^\s+(\d+)\s*:\s*(\d+)\s*(#.*)?$)");
  const std::regex blank_or_comment(R"(^\s*(#.*)?$)");
  std::string line;
  bool in_block = false;
  int entries = 0;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = path + ":" + std::to_string(line_no);
    if (!in_block) {
      in_block = line.rfind("learning_map:", 0) == 0;
      continue;
    }
    std::smatch m;
    if (std::regex_match(line, m, entry)) {
      map.set(uint32_t(std::stoul(m[1])), std::stoi(m[2]), where);
      ++entries;
    } else if (std::regex_match(line, blank_or_comment)) {
      continue;
    } else if (line[0] != ' ' && line[0] != '\t') {
      break;  // the next top-level key ends the block
    } else {
      throw InputError(where + ": expected 'RAW_ID : TRAIN_ID' in learning_map, got '" + line + "'");
    }
  }
  require(entries > 0, path + ": no 'learning_map:' block with entries");
  return map;
}

std::array<uint32_t, kNumSemanticClasses> learning_map_inverse() {
  return {0, 10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81};
}

std::vector<uint32_t> LearningMap::raw_ids() const {
  std::vector<uint32_t> ids;
  for (uint32_t id = 0; id <= uint32_t(kMaxRawId); ++id)
    if (table_[id] != kUnknownRawId) ids.push_back(id);
  return ids;
}

}  // namespace lt
