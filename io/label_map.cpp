#include "io/label_map.hpp"

#include <algorithm>
#include <fstream>

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

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

// "^\s*(#.*)?$"
bool blank_or_comment(const std::string& line) {
  size_t i = 0;
  while (i < line.size() && is_space(line[i])) ++i;
  return i == line.size() || line[i] == '#';
}

// A decimal integer at line[i...] (its digits kept for messages): advances i; false when there is none.
// Values past 2^31 saturate there, so no digit string overflows; the caller's range checks refuse them.
struct Number {
  int64_t value = 0;
  std::string digits;
};
bool read_number(const std::string& line, size_t& i, Number& number) {
  const size_t start = i;
  for (; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i)
    number.value = std::min<int64_t>(number.value * 10 + (line[i] - '0'), int64_t(1) << 31);
  number.digits = line.substr(start, std::min<size_t>(i - start, 40));
  return i > start;
}

// "^\s+(\d+)\s*:\s*(\d+)\s*(#.*)?$" by hand: std::regex recurses per character, so a long line
// of outside input could exhaust the stack.
bool read_entry(const std::string& line, Number& raw, Number& train) {
  size_t i = 0;
  while (i < line.size() && is_space(line[i])) ++i;
  if (i == 0 || !read_number(line, i, raw)) return false;
  while (i < line.size() && is_space(line[i])) ++i;
  if (i == line.size() || line[i++] != ':') return false;
  while (i < line.size() && is_space(line[i])) ++i;
  if (!read_number(line, i, train)) return false;
  while (i < line.size() && is_space(line[i])) ++i;
  return i == line.size() || line[i] == '#';
}

}  // namespace

LearningMap LearningMap::from_yaml_file(const std::string& path) {
  std::ifstream in(path);
  require(bool(in), path + ": cannot open label map");
  LearningMap map;
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
    Number raw, train;
    if (read_entry(line, raw, train)) {
      require(raw.value <= int64_t(kMaxRawId), where + ": raw id " + raw.digits + " exceeds 16 bits");
      require(train.value < kNumSemanticClasses,
              where + ": training id " + train.digits + " outside 0.." + std::to_string(kNumSemanticClasses - 1));
      map.set(uint32_t(raw.value), int(train.value), where);
      ++entries;
    } else if (blank_or_comment(line)) {
      continue;
    } else if (!is_space(line[0])) {
      break;  // the next top-level key ends the block
    } else {
      throw InputError(where + ": expected 'RAW_ID : TRAIN_ID' in learning_map, got '" + line.substr(0, 80) +
                       (line.size() > 80 ? "...'" : "'"));
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
