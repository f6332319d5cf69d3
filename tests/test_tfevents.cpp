// TensorBoard event files (io/tfevents.hpp): CRC-32C against its published check values, an Event's bytes
// against the protobuf encoding worked out by hand, the record framing read back by the format's rules,
// and the run-directory behaviour train relies on (resume keeps the curve without repeated steps, a cut-off
// tail is dropped, other event files are left alone).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "io/tfevents.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace {
namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/lidartrain_tfevents.XXXXXX";
    path = ::mkdtemp(name);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Every file of the directory named events.out.tfevents.*.
std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// tag → the steps it was logged at, in file order.
std::map<std::string, std::vector<int64_t>> steps_by_tag(const std::vector<TfEvent>& events) {
  std::map<std::string, std::vector<int64_t>> steps;
  for (const TfEvent& e : events)
    for (const auto& [tag, value] : e.scalars) steps[tag].push_back(e.step);
  return steps;
}

TEST(TfEvents, Crc32cGivesItsPublishedCheckValues) {
  const char* nine = "123456789";
  EXPECT_EQ(crc32c(nine, 9), 0xE3069283u);  // the CRC catalogue's check value for CRC-32C
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);  // RFC 3720, B.4
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(nine + 4, 5, crc32c(nine, 4)), 0xE3069283u);  // continued
  EXPECT_EQ(masked_crc32c("", 0), 0xa282ead8u);                  // ((0 >> 15) | (0 << 17)) + the mask delta
  const uint32_t crc = 0xE3069283u;
  EXPECT_EQ(masked_crc32c(nine, 9), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TfEvents, AScalarEventIsTheProtobufEncodingByHand) {
  TfEvent event;
  event.wall_time = 1.5;
  event.step = 7;
  event.scalars.emplace_back("train/loss", 2.5f);
  // Event{1: double 1.5, 2: varint 7, 5: Summary{1: Value{1: "train/loss", 2: float 2.5}}}.
  const std::string want = std::string("\x09\x00\x00\x00\x00\x00\x00\xf8\x3f", 9) + "\x10\x07" + "\x2a\x13" +
                           "\x0a\x11" + "\x0a\x0a" + "train/loss" + std::string("\x15\x00\x00\x20\x40", 5);
  EXPECT_EQ(encode_event(event), want);
  TfEvent version;
  version.file_version = "brain.Event:2";
  EXPECT_EQ(encode_event(version), std::string(9, '\0').replace(0, 1, "\x09") + "\x1a\x0d" + "brain.Event:2");
}

TEST(TfEvents, RecordsAreFramedByTheFormatsRules) {
  const std::string payload = "some event bytes";
  const std::string record = frame_record(payload);
  ASSERT_EQ(record.size(), 8 + 4 + payload.size() + 4);
  uint64_t length = 0;
  uint32_t length_crc = 0, data_crc = 0;
  std::memcpy(&length, record.data(), 8);
  std::memcpy(&length_crc, record.data() + 8, 4);
  std::memcpy(&data_crc, record.data() + 12 + payload.size(), 4);
  EXPECT_EQ(length, payload.size());
  EXPECT_EQ(length_crc, masked_crc32c(record.data(), 8));
  EXPECT_EQ(record.substr(12, payload.size()), payload);
  EXPECT_EQ(data_crc, masked_crc32c(payload.data(), payload.size()));
}

TEST(TfEvents, TrainsCurvesReadBackAndResumeWithoutRepeatedSteps) {
  TempDir dir;
  TfEventsWriter writer;
  writer.open(dir.path, -1, 1700000000.25);
  for (int64_t step = 1; step <= 5; ++step)
    writer.scalars(step, 1700000000.0 + double(step), {{"train/loss", 1.0 / double(step)}, {"train/lr", 0.001}});
  const std::string first = writer.path();
  EXPECT_NE(fs::path(first).filename().string().find("events.out.tfevents.1700000000."), std::string::npos);
  std::vector<TfEvent> events = read_tfevents(first, /*strict=*/true);
  ASSERT_EQ(events.size(), 1u + 10u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[3].step, 2);
  EXPECT_EQ(events[3].scalars.at(0), std::make_pair(std::string("train/loss"), 0.5f));
  EXPECT_EQ(events[3].wall_time, 1700000002.0);

  // Resumed from a checkpoint of step 3 (steps 4 and 5 were logged after it): the same file keeps
  // steps 1-3 and goes on from step 4.
  TfEventsWriter resumed;
  resumed.open(dir.path, 3, 1700000100.0);
  EXPECT_EQ(resumed.path(), first);
  for (int64_t step = 4; step <= 6; ++step) resumed.scalars(step, 1700000100.0 + double(step), {{"train/loss", 9.0}});
  events = read_tfevents(first, true);
  const auto steps = steps_by_tag(events);
  EXPECT_EQ(steps.at("train/loss"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(steps.at("train/lr"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(event_files(dir.path), std::vector<std::string>{first});
}

TEST(TfEvents, ACutOffTailIsRefusedStrictlyAndDroppedOnResume) {
  TempDir dir;
  TfEventsWriter writer;
  writer.open(dir.path, -1, 1700000000.0);
  writer.scalars(1, 1.0, {{"train/loss", 1.0}});
  writer.scalars(2, 2.0, {{"train/loss", 2.0}});
  const std::string path = writer.path();
  std::string bytes = read_bytes(path);
  const size_t whole = bytes.size();
  write_bytes(path, bytes.substr(0, whole - 7));  // a crash in the middle of step 2's record
  try {
    read_tfevents(path, true);
    FAIL() << "a cut-off record was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": not a TensorBoard event file: a record of"), std::string::npos)
        << e.what();
  }
  size_t good_end = 0;
  EXPECT_EQ(read_tfevents(path, false, &good_end).size(), 2u);  // the version and step 1
  TfEventsWriter resumed;
  resumed.open(dir.path, 1, 3.0);
  resumed.scalars(2, 4.0, {{"train/loss", 2.5}});
  EXPECT_EQ(steps_by_tag(read_tfevents(path, true)).at("train/loss"), (std::vector<int64_t>{1, 2}));

  // A flipped byte in a record's data: its CRC no longer matches.
  bytes = read_bytes(path);
  bytes[bytes.size() - 6] ^= 0x40;
  write_bytes(path, bytes);
  try {
    read_tfevents(path, true);
    FAIL() << "a damaged record was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("a record whose CRC does not match at byte"), std::string::npos) << e.what();
  }
}

TEST(TfEvents, OtherEventFilesInTheDirectoryAreLeftAlone) {
  TempDir dir;
  // Another program's file, and one that is not an event file at all.
  const std::string other = dir.path + "/events.out.tfevents.1600000000.otherhost";
  TfEvent foreign;
  foreign.step = 40;
  foreign.scalars.emplace_back("their/loss", 1.f);
  const std::string foreign_bytes = frame_record(encode_event(foreign));
  write_bytes(other, foreign_bytes);
  const std::string junk = dir.path + "/events.out.tfevents.1600000001.junk.lidartrain.bak";
  write_bytes(junk, "not events");
  TfEventsWriter writer;
  writer.open(dir.path, 5, 1700000000.0);  // resuming, with no file of ours yet: a new one
  writer.scalars(6, 1.0, {{"train/loss", 1.0}});
  EXPECT_NE(writer.path(), other);
  EXPECT_EQ(read_bytes(other), foreign_bytes);
  EXPECT_EQ(read_bytes(junk), "not events");
  EXPECT_EQ(event_files(dir.path).size(), 3u);
  EXPECT_EQ(steps_by_tag(read_tfevents(writer.path(), true)).at("train/loss"), std::vector<int64_t>{6});
}

}  // namespace
}  // namespace lt
