#include "io/predictions.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "io/hdf5_util.hpp"
#include "io/label_map.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {
constexpr const char* kSchema = "lidartrain.predictions";
constexpr int64_t kVersion = 1;
constexpr hsize_t kLabelChunkRows = 131072;
constexpr hsize_t kBoxChunkRows = 4096;
constexpr hsize_t kIndexChunkRows = 4096;
constexpr hsize_t kMaxRowsPerFrame = hsize_t(1) << 24;

}  // namespace

// ---- writing -----------------------------------------------------------------------------------

struct PredictionsWriter::Impl {
  std::string path;
  PredictionsHeader header;
  h5::MemoryFile file;
  h5::Appender labels, boxes, box_labels, scores;
  std::vector<int64_t> frame_index, offsets{0};
  std::vector<std::string> ids;
  bool committed = false;
};

PredictionsWriter::PredictionsWriter(const std::string& path, const PredictionsHeader& header)
    : impl_(std::make_unique<Impl>()) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  require(!header.model.empty(), path + ": no model name");
  Impl& m = *impl_;
  m.path = path;
  m.header = header;
  m.file = h5::MemoryFile();  // written to `path` whole by commit()
  const hid_t f = m.file.get();
  h5::write_attr_string(f, "schema", kSchema, m.path);
  h5::write_attr_int(f, "version", kVersion, m.path);
  h5::write_attr_string(f, "model", header.model, m.path);
  h5::write_attr_string(f, "checkpoint_identity", header.checkpoint_identity, m.path);
  h5::write_attr_string(f, "dataset_id", header.dataset_id, m.path);
  h5::write_attr_int(f, "rank", header.rank, m.path);
  h5::write_attr_int(f, "ranks", header.ranks, m.path);
  if (header.point_labels) {
    m.labels = h5::Appender(f, "labels", H5T_STD_U8LE, 0, kLabelChunkRows, m.path);
  } else {
    m.boxes = h5::Appender(f, "boxes", H5T_IEEE_F32LE, 7, kBoxChunkRows, m.path);
    m.box_labels = h5::Appender(f, "box_labels", H5T_STD_U8LE, 0, kBoxChunkRows, m.path);
    m.scores = h5::Appender(f, "scores", H5T_IEEE_F32LE, 0, kBoxChunkRows, m.path);
    h5::write_array(f, "point_range", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {6}, 6, header.point_range.data(), m.path);
  }
}

PredictionsWriter::~PredictionsWriter() {
  if (!impl_ || impl_->committed) return;
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  impl_.reset();  // its datasets, then the file in memory: nothing on disk to remove
}

void PredictionsWriter::add(const FramePrediction& p) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  Impl& m = *impl_;
  const std::string at = m.path + ": frame " + p.id;
  if (m.header.point_labels) {
    require(p.boxes.empty() && p.box_labels.empty() && p.scores.empty(), at + ": boxes in a semseg prediction");
    for (uint8_t label : p.labels) require(label < kNumSemanticClasses, at + ": label is not a training id");
    m.labels.append(H5T_NATIVE_UINT8, p.labels.data(), p.labels.size());
    m.offsets.push_back(int64_t(m.labels.rows()));
  } else {
    require(p.labels.empty(), at + ": point labels in a bevdet prediction");
    require(p.boxes.size() == 7 * p.box_labels.size() && p.scores.size() == p.box_labels.size(),
            at + ": box, label and score counts differ");
    for (uint8_t label : p.box_labels) require(label >= 1 && label < kNumBoxClasses, at + ": box class not 1..3");
    m.boxes.append(H5T_NATIVE_FLOAT, p.boxes.data(), p.box_labels.size());
    m.box_labels.append(H5T_NATIVE_UINT8, p.box_labels.data(), p.box_labels.size());
    m.scores.append(H5T_NATIVE_FLOAT, p.scores.data(), p.scores.size());
    m.offsets.push_back(int64_t(m.box_labels.rows()));
  }
  m.frame_index.push_back(p.frame_index);
  m.ids.push_back(p.id);
}

void PredictionsWriter::commit() {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  Impl& m = *impl_;
  const hid_t f = m.file.get();
  h5::write_attr_int(f, "frames", int64_t(m.ids.size()), m.path);
  h5::write_array(f, "frame_index", H5T_NATIVE_INT64, H5T_STD_I64LE, {hsize_t(m.ids.size())}, kIndexChunkRows,
                  m.frame_index.data(), m.path);
  h5::write_strings(f, "frame_ids", m.ids, m.path);
  h5::write_array(f, m.header.point_labels ? "point_offsets" : "box_offsets", H5T_NATIVE_INT64, H5T_STD_I64LE,
                  {hsize_t(m.offsets.size())}, kIndexChunkRows, m.offsets.data(), m.path);
  m.labels = {}, m.boxes = {}, m.box_labels = {}, m.scores = {};
  m.committed = true;  // commit_file closes the file and removes its temporary file if the write fails
  h5::commit_file(std::move(m.file), m.path);
}

// ---- reading -----------------------------------------------------------------------------------

namespace {

struct PredictionFile {
  std::string path;
  h5::Handle file;
  h5::Handle labels, boxes, box_labels, scores;
  std::vector<int64_t> offsets;
  std::vector<std::string> ids;
};

std::vector<int64_t> read_int64s(hid_t file, const std::string& name, hsize_t length, const std::string& path) {
  const std::string where = path + ": /" + name;
  h5::Handle set = h5::open_dataset(file, name, path);
  const auto dims = h5::checked_dims(set.get(), 1, H5T_INTEGER, 8, true, where);
  require(dims[0] == length, where + ": length " + std::to_string(dims[0]) + ", expected " + std::to_string(length));
  std::vector<int64_t> values(length);
  h5::read_rows(set.get(), H5T_NATIVE_INT64, 0, length, values.data(), where);
  return values;
}

// Opens `name` as (rows) or (rows, columns) of the given kind; returns rows.
hsize_t open_rows(hid_t file, const std::string& name, H5T_class_t type_class, size_t size, bool is_signed,
                  hsize_t columns, h5::Handle& out, const std::string& path) {
  out = h5::open_dataset(file, name, path);
  const auto dims = h5::checked_dims(out.get(), columns > 0 ? 2 : 1, type_class, size, is_signed, path + ": /" + name);
  if (columns > 0 && dims[1] != columns)  // dims[1] exists only then: the message is built only on failure
    throw InputError(path + ": /" + name + " has " + std::to_string(dims[1]) + " columns, expected " +
                     std::to_string(columns));
  return dims[0];
}

}  // namespace

struct PredictionsReader::Impl {
  PredictionsHeader header;
  std::vector<PredictionFile> files;
  std::map<int64_t, std::pair<size_t, int64_t>> where;  // frame index -> (file, row)
};

PredictionsReader::PredictionsReader(const std::string& dir) : impl_(std::make_unique<Impl>()) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  std::error_code ec;
  require(fs::is_directory(dir, ec), dir + ": no such predictions directory");
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".h5") paths.push_back(entry.path().string());
  std::sort(paths.begin(), paths.end());
  require(!paths.empty(), dir + ": no predictions files (*.h5): did infer --data finish?");
  Impl& m = *impl_;
  for (const std::string& path : paths) {
    PredictionFile p;
    p.path = path;
    p.file = h5::open_file_readonly(path);
    const hid_t f = p.file.get();
    const std::string schema = h5::read_attr_string(f, "schema", path);
    require(schema == kSchema, path + ": schema is '" + schema + "', expected '" + kSchema + "'");
    const int64_t version = h5::read_attr_int(f, "version", path);
    require(version == kVersion, path + ": schema version " + std::to_string(version) + " is not supported");
    PredictionsHeader h;
    h.model = h5::read_attr_string(f, "model", path);
    h.checkpoint_identity = h5::read_attr_string(f, "checkpoint_identity", path);
    h.dataset_id = h5::read_attr_string(f, "dataset_id", path);
    h.rank = h5::read_attr_int(f, "rank", path);
    h.ranks = h5::read_attr_int(f, "ranks", path);
    // Point labels or boxes: the file says which by the offsets it holds (exactly one of them).
    h.point_labels = h5::has_link(f, "point_offsets");
    require(h.point_labels != h5::has_link(f, "box_offsets"),
            path + ": holds " +
                (h.point_labels ? "both /point_offsets and /box_offsets" : "neither /point_offsets nor /box_offsets"));
    const int64_t frames = h5::read_attr_int(f, "frames", path);
    require(frames >= 0, path + ": negative frame count");
    const std::vector<int64_t> index = read_int64s(f, "frame_index", hsize_t(frames), path);
    h5::Handle ids = h5::open_dataset(f, "frame_ids", path);
    p.ids = h5::read_strings(ids.get(), path + ": /frame_ids");
    require(int64_t(p.ids.size()) == frames, path + ": /frame_ids has " + std::to_string(p.ids.size()) +
                                                 " entries for " + std::to_string(frames) + " frames");
    hsize_t rows = 0;
    if (h.point_labels) {
      rows = open_rows(f, "labels", H5T_INTEGER, 1, false, 0, p.labels, path);
      p.offsets = read_int64s(f, "point_offsets", hsize_t(frames) + 1, path);
    } else {
      rows = open_rows(f, "boxes", H5T_FLOAT, 4, true, 7, p.boxes, path);
      require(open_rows(f, "box_labels", H5T_INTEGER, 1, false, 0, p.box_labels, path) == rows &&
                  open_rows(f, "scores", H5T_FLOAT, 4, true, 0, p.scores, path) == rows,
              path + ": /boxes, /box_labels and /scores differ in length");
      p.offsets = read_int64s(f, "box_offsets", hsize_t(frames) + 1, path);
      h5::Handle range = h5::open_dataset(f, "point_range", path);
      const auto dims = h5::checked_dims(range.get(), 1, H5T_FLOAT, 8, true, path + ": /point_range");
      require(dims[0] == 6, path + ": /point_range has " + std::to_string(dims[0]) + " values, expected 6");
      h5::read_rows(range.get(), H5T_NATIVE_DOUBLE, 0, 6, h.point_range.data(), path + ": /point_range");
      for (double v : h.point_range) require(std::isfinite(v), path + ": /point_range is not finite");
    }
    require(p.offsets.front() == 0, path + ": first offset is not 0");
    for (size_t i = 1; i < p.offsets.size(); ++i)
      require(p.offsets[i] >= p.offsets[i - 1], path + ": offsets decrease at frame " + p.ids[i - 1]);
    require(p.offsets.back() == int64_t(rows), path + ": last offset " + std::to_string(p.offsets.back()) +
                                                   " does not match " + std::to_string(rows) + " rows");
    if (m.files.empty()) {
      m.header = h;
    } else {
      const PredictionsHeader& first = m.header;
      require(h.model == first.model && h.checkpoint_identity == first.checkpoint_identity &&
                  h.dataset_id == first.dataset_id && h.point_range == first.point_range,
              path + ": predictions of another model, checkpoint or dataset than " + m.files.front().path);
    }
    for (int64_t r = 0; r < frames; ++r) {
      require(index[size_t(r)] >= 0, path + ": frame " + p.ids[size_t(r)] + ": negative frame index");
      const auto [it, fresh] = m.where.emplace(index[size_t(r)], std::make_pair(m.files.size(), r));
      require(fresh, path + ": frame " + p.ids[size_t(r)] + " (index " + std::to_string(index[size_t(r)]) +
                         ") is also in " + (fresh ? "" : m.files[it->second.first].path));
    }
    m.files.push_back(std::move(p));
  }
  m.header.rank = 0;
  m.header.ranks = int64_t(m.files.size());
}

PredictionsReader::~PredictionsReader() {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  impl_.reset();
}

const PredictionsHeader& PredictionsReader::header() const {
  return impl_->header;
}
int64_t PredictionsReader::num_frames() const {
  return int64_t(impl_->where.size());
}
bool PredictionsReader::has(int64_t frame_index) const {
  return impl_->where.count(frame_index) > 0;
}

namespace {
const std::pair<size_t, int64_t>& located(const std::map<int64_t, std::pair<size_t, int64_t>>& where, int64_t f) {
  const auto it = where.find(f);
  require(it != where.end(), "predictions: no frame of index " + std::to_string(f));
  return it->second;
}
}  // namespace

const std::string& PredictionsReader::id(int64_t frame_index) const {
  const auto& [file, row] = located(impl_->where, frame_index);
  return impl_->files[file].ids[size_t(row)];
}

int64_t PredictionsReader::count(int64_t frame_index) const {
  const auto& [file, row] = located(impl_->where, frame_index);
  const auto& offsets = impl_->files[file].offsets;
  return offsets[size_t(row) + 1] - offsets[size_t(row)];
}

FramePrediction PredictionsReader::read(int64_t frame_index) const {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  const auto& [file, row] = located(impl_->where, frame_index);
  const PredictionFile& p = impl_->files[file];
  FramePrediction out;
  out.frame_index = frame_index;
  out.id = p.ids[size_t(row)];
  const std::string at = p.path + ": frame " + out.id;
  const hsize_t first = hsize_t(p.offsets[size_t(row)]);
  const hsize_t n = hsize_t(p.offsets[size_t(row) + 1]) - first;
  require(n <= kMaxRowsPerFrame, at + ": " + std::to_string(n) + " rows exceeds the limit per frame");
  if (impl_->header.point_labels) {
    out.labels.resize(n);
    h5::read_rows(p.labels.get(), H5T_NATIVE_UINT8, first, n, out.labels.data(), at + ": /labels");
    for (uint8_t label : out.labels) require(label < kNumSemanticClasses, at + ": a label is not a training id");
  } else {
    out.boxes.resize(7 * n);
    out.box_labels.resize(n);
    out.scores.resize(n);
    h5::read_rows(p.boxes.get(), H5T_NATIVE_FLOAT, first, n, out.boxes.data(), at + ": /boxes");
    h5::read_rows(p.box_labels.get(), H5T_NATIVE_UINT8, first, n, out.box_labels.data(), at + ": /box_labels");
    h5::read_rows(p.scores.get(), H5T_NATIVE_FLOAT, first, n, out.scores.data(), at + ": /scores");
    for (float v : out.boxes) require(std::isfinite(v), at + ": a box is not finite");
    for (float v : out.scores) require(std::isfinite(v), at + ": a score is not finite");
    for (uint8_t label : out.box_labels)
      require(label >= 1 && label < kNumBoxClasses, at + ": a box class is not 1..3");
  }
  return out;
}

}  // namespace lt
