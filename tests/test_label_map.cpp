#include <gtest/gtest.h>

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

TEST(LearningMap, MalformedYamlLineIsNamed) {
  const auto path = (std::filesystem::temp_directory_path() / "lt_bad_map.yaml").string();
  std::ofstream(path) << "labels:\n  0: x\nlearning_map:\n  0 : 0\n  10: car\n";
  try {
    LearningMap::from_yaml_file(path);
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":5"), std::string::npos) << e.what();
  }
}

TEST(LearningMap, TrainingIdOutOfRangeIsAnError) {
  const auto path = (std::filesystem::temp_directory_path() / "lt_bad_map2.yaml").string();
  std::ofstream(path) << "learning_map:\n  0 : 0\n  10: 20\n";
  EXPECT_THROW(LearningMap::from_yaml_file(path), InputError);
}

}  // namespace
}  // namespace lt
