// Outputs that cannot be written (DESIGN.md §10): every writer reports the file, the operation and the
// OS error as a WriteError, leaves no temporary file behind and no HDF5 object open (CI runs these under
// ASan and UBSan too). A full disk is a temporary file that is a link to /dev/full, where every write
// fails with ENOSPC; tests/e2e/disk_full.sh does the same on real small file systems.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>

#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/predictions.hpp"
#include "src/common/error.hpp"
#include "tests/test_util.hpp"

namespace lt {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;

ssize_t open_hdf5_objects() {
  return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
}

// `dir/name`, whose temporary file `dir/name.tmp` is /dev/full.
std::string on_full_disk(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  fs::create_symlink("/dev/full", path + ".tmp");
  return path;
}

// The WriteError `f` throws ("" when it throws none).
std::string write_error_of(const std::function<void()>& f) {
  return testing::error_of<WriteError>(f);
}

TEST(WriteErrors, ACheckpointOnAFullDiskNamesItsFileAndLeavesNothingOpen) {
  const std::string dir = fresh_dir("werr_ckpt");
  ParamStore params, buffers;
  params.add("w", {300, 4});
  params.allocate(true);
  buffers.add("running_mean", {4});
  buffers.allocate(false);
  std::vector<float> momentum(params.values().size(), 0.5f);
  CheckpointMeta meta;
  meta.model = "test";
  const ssize_t before = open_hdf5_objects();
  const std::string path = on_full_disk(dir, "ckpt-00000012.h5");
  EXPECT_EQ(write_error_of([&] { write_checkpoint(path, meta, params, buffers, {{"momentum_buffer", &momentum}}); }),
            path + ".tmp: write failed: No space left on device");
  EXPECT_EQ(open_hdf5_objects(), before);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::is_symlink(path + ".tmp"));
  // With room, the same call writes a checkpoint that verifies (checksums, superblock and all).
  write_checkpoint(path, meta, params, buffers, {{"momentum_buffer", &momentum}});
  verify_checkpoint(path);
  EXPECT_EQ(open_hdf5_objects(), before);
}

TEST(WriteErrors, AShardOnAFullDiskNamesItsFileAndLeavesNothingOpen) {
  const std::string dir = fresh_dir("werr_shard");
  Frame frame;
  frame.id = "000000";
  frame.points = {1, 2, 3, 0.5f, 4, 5, 6, 0.25f};
  frame.labels = {1, 2};
  const ssize_t before = open_hdf5_objects();
  const std::string path = on_full_disk(dir, "shard-00000.h5");
  EXPECT_EQ(write_error_of([&] { write_shard(path, {frame}, DatasetKind{true, false}, "test"); }),
            path + ".tmp: write failed: No space left on device");
  EXPECT_EQ(open_hdf5_objects(), before);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(WriteErrors, APredictionsFileOnAFullDiskNamesItsFileAndLeavesNothingOpen) {
  const std::string dir = fresh_dir("werr_pred");
  PredictionsHeader header;
  header.model = "semseg";
  header.checkpoint_identity = "semseg step 1";
  header.dataset_id = "0123456789abcdef";
  FramePrediction p;
  p.id = "000000";
  p.labels.assign(70000, 3);
  const ssize_t before = open_hdf5_objects();
  const std::string path = on_full_disk(dir, "rank-00000-of-00001.h5");
  {
    PredictionsWriter writer(path, header);
    writer.add(p);
    EXPECT_EQ(write_error_of([&] { writer.commit(); }), path + ".tmp: write failed: No space left on device");
  }
  {
    PredictionsWriter abandoned(dir + "/other.h5", header);  // an error elsewhere before its commit
    abandoned.add(p);
  }
  EXPECT_EQ(open_hdf5_objects(), before);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(fs::exists(dir + "/other.h5"));
}

TEST(WriteErrors, TextFilesAndAppendedLinesNameTheFileAndTheOsError) {
  const std::string dir = fresh_dir("werr_text");
  EXPECT_EQ(write_error_of([&] { write_text_file_atomically(dir + "/no/such/LATEST", "ckpt\n"); }),
            dir + "/no/such/LATEST.tmp: create failed: No such file or directory");
  const std::string latest = on_full_disk(dir, "LATEST");
  EXPECT_EQ(write_error_of([&] { write_text_file_atomically(latest, "ckpt-00000012.h5\n"); }),
            latest + ".tmp: write failed: No space left on device");
  EXPECT_FALSE(fs::exists(latest));
  AppendFile metrics;
  metrics.open("/dev/full", /*truncate=*/false);
  EXPECT_EQ(write_error_of([&] { metrics.append("{\"step\":1}\n"); }), "/dev/full: write failed: No space left on device");
  // A file in the way of a directory is bad input (exit 1), not a write error.
  testing::write_bytes(dir + "/file", "x", 1);
  EXPECT_EQ(testing::input_error_of([&] { create_directories(dir + "/file/sub", "run directory"); }),
            dir + "/file/sub: cannot create the run directory (a file is in the way)");
}

}  // namespace
}  // namespace lt
