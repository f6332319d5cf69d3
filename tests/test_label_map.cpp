#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "io/label_map.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace {

const std::string kConfigDir = std::string(LIDARTRAIN_SHARED_DATA) + "/config";

TEST(LearningMap, BuiltInMapEqualsTheOfficialYaml) {
  const LearningMap built_in = LearningMap::semantic_kitti();
  const LearningMap from_yaml = LearningMap::from_yaml_file(kConfigDir + "/semantic-kitti.yaml");
  ASSERT_EQ(built_in.raw_ids(), from_yaml.raw_ids());
  EXPECT_EQ(built_in.raw_ids().size(), 34u);
  for (uint32_t id : built_in.raw_ids()) EXPECT_EQ(built_in.to_train(id), from_yaml.to_train(id)) << id;
}

TEST(LearningMap, KnownEntries) {
  const LearningMap map = LearningMap::semantic_kitti();
  EXPECT_EQ(map.to_train(10), kCar);
  EXPECT_EQ(map.to_train(252), kCar);  // moving-car
  EXPECT_EQ(map.to_train(254), kPerson);
  EXPECT_EQ(map.to_train(52), kUnlabeled);  // other-structure
  EXPECT_EQ(map.to_train(60), kRoad);       // lane-marking
  EXPECT_EQ(map.to_train(81), kTrafficSign);
  EXPECT_EQ(map.to_train(12), LearningMap::kUnknownRawId);
  EXPECT_EQ(map.to_train(70000), LearningMap::kUnknownRawId);
}

// A directory of this test process's own: ctest runs tests (and the sanitizer build's copies of them) in
// parallel, and two of them writing the same file in /tmp read each other's contents.
std::filesystem::path scratch_dir() {
  const auto dir = std::filesystem::temp_directory_path() / ("lt_label_map_test." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(LearningMap, MalformedYamlLineIsNamed) {
  const auto path = (scratch_dir() / "lt_bad_map.yaml").string();
  std::ofstream(path) << "labels:\n  0: x\nlearning_map:\n  0 : 0\n  10: car\n";
  try {
    LearningMap::from_yaml_file(path);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":5"), std::string::npos) << e.what();
  }
}

TEST(LearningMap, TrainingIdOutOfRangeIsAnError) {
  const auto path = (scratch_dir() / "lt_bad_map2.yaml").string();
  std::ofstream(path) << "learning_map:\n  0 : 0\n  10: 20\n";
  EXPECT_THROW(LearningMap::from_yaml_file(path), InputError);
}

std::string error_of(const std::string& yaml_text) {
  const auto path = (scratch_dir() / "lt_fuzzed_map.yaml").string();
  std::ofstream(path, std::ios::binary) << yaml_text;
  try {
    LearningMap::from_yaml_file(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// Fuzz finding (tests/fuzz/findings/label_map-crash.yaml): a training id of more digits than an int
// ended the process with std::out_of_range from std::stoi.
TEST(LearningMap, FuzzFindingOverlongNumbersAreInputErrors) {
  std::ifstream in(std::string(LIDARTRAIN_FUZZ_FINDINGS) + "/label_map-crash.yaml", std::ios::binary);
  ASSERT_TRUE(bool(in));
  const std::string finding((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(error_of(finding).find("lt_fuzzed_map.yaml:"), std::string::npos) << error_of(finding);
  EXPECT_NE(error_of("learning_map:\n  10 : 123456789012345678901234567890\n")
                .find(":2: training id 123456789012345678901234567890 outside 0..19"),
            std::string::npos);
  EXPECT_NE(error_of("learning_map:\n  99999999999999999999 : 1\n").find(":2: raw id 99999999999999999999 exceeds"),
            std::string::npos);
  EXPECT_NE(error_of("learning_map:\n  65536 : 1\n").find("raw id 65536 exceeds 16 bits"), std::string::npos);
}

// The line grammar is the regex it replaced: "^\s+(\d+)\s*:\s*(\d+)\s*(#.*)?$" for entries.
TEST(LearningMap, EntryGrammarAndLongLines) {
  const auto path = (scratch_dir() / "lt_grammar_map.yaml").string();
  std::ofstream(path) << "labels:\n  10: car\nlearning_map:\n\t10:1 # car\n   11 :  2\n\n  # comment\n  13 : 5  \n"
                      << "learning_map_inv:\n  0 : 0\n";
  const LearningMap map = LearningMap::from_yaml_file(path);
  EXPECT_EQ(map.raw_ids(), (std::vector<uint32_t>{10, 11, 13}));
  EXPECT_EQ(map.to_train(10), 1);
  EXPECT_EQ(map.to_train(11), 2);
  EXPECT_EQ(map.to_train(13), 5);
  for (const char* bad : {"  10 1\n", "  10 : \n", "  : 1\n", "  10 : 1 x\n", "  -1 : 1\n"})
    EXPECT_NE(error_of("learning_map:\n  0 : 0\n" + std::string(bad)).find(":3: expected 'RAW_ID : TRAIN_ID'"),
              std::string::npos)
        << bad;
  // A megabyte-long line (std::regex recursed per character) is an error with the line cut short.
  const std::string message = error_of("learning_map:\n  0 : 0\n " + std::string(1 << 20, '1') + "x\n");
  EXPECT_NE(message.find(":3: expected"), std::string::npos);
  EXPECT_LT(message.size(), 300u);
}

}  // namespace
}  // namespace lt
