#pragma once
// The label spaces every dataset shares (DESIGN.md §4): the 19 SemanticKITTI training classes with
// 0 = unlabeled/ignored, and the box classes Car(1), Pedestrian(2), Cyclist(3).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lt {

inline constexpr int kNumSemanticClasses = 20;  // ids 0..19, 0 ignored in training
inline constexpr std::array<const char*, kNumSemanticClasses> kSemanticClassNames = {
    "unlabeled", "car",          "bicycle", "motorcycle", "truck",    "other-vehicle", "person",
    "bicyclist", "motorcyclist", "road",    "parking",    "sidewalk", "other-ground",  "building",
    "fence",     "vegetation",   "trunk",   "terrain",    "pole",     "traffic-sign"};

enum SemanticClass : uint8_t {
  kUnlabeled = 0,
  kCar = 1,
  kBicycle = 2,
  kMotorcycle = 3,
  kTruck = 4,
  kOtherVehicle = 5,
  kPerson = 6,
  kBicyclist = 7,
  kMotorcyclist = 8,
  kRoad = 9,
  kParking = 10,
  kSidewalk = 11,
  kOtherGround = 12,
  kBuilding = 13,
  kFence = 14,
  kVegetation = 15,
  kTrunk = 16,
  kTerrain = 17,
  kPole = 18,
  kTrafficSign = 19,
};

inline constexpr int kNumBoxClasses = 4;  // index 0 is no class; boxes carry 1..3
inline constexpr std::array<const char*, kNumBoxClasses> kBoxClassNames = {"none", "Car", "Pedestrian", "Cyclist"};
enum BoxClass : uint8_t { kBoxCar = 1, kBoxPedestrian = 2, kBoxCyclist = 3 };

// Training id -> raw SemanticKITTI id (semantic-kitti.yaml's learning_map_inv), for .label outputs.
std::array<uint32_t, kNumSemanticClasses> learning_map_inverse();

// Raw SemanticKITTI label id (low 16 bits of a .label entry) -> training id.
// kUnknownRawId for ids the map does not list: those are input errors, never silently ignored.
class LearningMap {
 public:
  static constexpr int kUnknownRawId = -1;
  static constexpr int kMaxRawId = 65535;

  // The standard map of semantic-kitti-api's config/semantic-kitti.yaml.
  static LearningMap semantic_kitti();
  // The `learning_map:` block of a semantic-kitti.yaml-style file ("  RAW : TRAIN   # comment" lines).
  // Throws InputError naming the file and line for anything else in the block.
  static LearningMap from_yaml_file(const std::string& path);

  int to_train(uint32_t raw_id) const { return raw_id <= kMaxRawId ? table_[raw_id] : kUnknownRawId; }
  // The raw ids the map lists, ascending.
  std::vector<uint32_t> raw_ids() const;

 private:
  LearningMap();
  void set(uint32_t raw_id, int train_id, const std::string& where);
  std::vector<int16_t> table_;  // (kMaxRawId + 1) training id or kUnknownRawId
};

}  // namespace lt
