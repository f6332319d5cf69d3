#include "io/tfevents.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {

// The reflected Castagnoli polynomial's table (CRC-32C, as TFRecord uses).
const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// ---- protobuf's wire format: the little we write and read ----
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) out += char(uint8_t(v) | 0x80), v >>= 7;
  out += char(uint8_t(v));
}
void put_tag(std::string& out, uint32_t field, WireType type) {
  put_varint(out, (uint64_t(field) << 3) | type);
}
static_assert(std::endian::native == std::endian::little, "the wire format's fixed-size fields are little-endian");
void put_fixed(std::string& out, const void* bytes, size_t size) {
  out.append(static_cast<const char*>(bytes), size);
}
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_tag(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

// A bounded reader over one message: every read checks what is left; false on a malformed message.
struct Cursor {
  const uint8_t* at;
  const uint8_t* end;
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at == end) return false;
      const uint8_t b = *at++;
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool fixed(void* out, size_t size) {
    if (size_t(end - at) < size) return false;
    std::memcpy(out, at, size), at += size;
    return true;
  }
  bool bytes(Cursor& inner) {
    uint64_t size = 0;
    if (!varint(size) || size > uint64_t(end - at)) return false;
    inner = {at, at + size}, at += size;
    return true;
  }
  bool skip(uint32_t type) {
    uint64_t v = 0;
    Cursor ignored{};
    char buffer[8];
    switch (type) {
      case kVarint:
        return varint(v);
      case kFixed64:
        return fixed(buffer, 8);
      case kFixed32:
        return fixed(buffer, 4);
      case kLengthDelimited:
        return bytes(ignored);
      default:
        return false;
    }
  }
  bool done() const { return at == end; }
};

bool decode_value(Cursor c, std::pair<std::string, float>& value) {
  while (!c.done()) {
    uint64_t key = 0;
    if (!c.varint(key)) return false;
    const uint32_t field = uint32_t(key >> 3), type = uint32_t(key & 7);
    Cursor inner{};
    if (field == 1 && type == kLengthDelimited) {
      if (!c.bytes(inner)) return false;
      value.first.assign(reinterpret_cast<const char*>(inner.at), size_t(inner.end - inner.at));
    } else if (field == 2 && type == kFixed32) {
      if (!c.fixed(&value.second, 4)) return false;
    } else if (!c.skip(type)) {
      return false;
    }
  }
  return true;
}

bool decode_event(Cursor c, TfEvent& event) {
  while (!c.done()) {
    uint64_t key = 0;
    if (!c.varint(key)) return false;
    const uint32_t field = uint32_t(key >> 3), type = uint32_t(key & 7);
    Cursor inner{};
    uint64_t v = 0;
    if (field == 1 && type == kFixed64) {
      if (!c.fixed(&event.wall_time, 8)) return false;
    } else if (field == 2 && type == kVarint) {
      if (!c.varint(v)) return false;
      event.step = int64_t(v);
    } else if (field == 3 && type == kLengthDelimited) {
      if (!c.bytes(inner)) return false;
      event.file_version.assign(reinterpret_cast<const char*>(inner.at), size_t(inner.end - inner.at));
    } else if (field == 5 && type == kLengthDelimited) {  // Summary: its repeated values
      if (!c.bytes(inner)) return false;
      while (!inner.done()) {
        uint64_t summary_key = 0;
        if (!inner.varint(summary_key)) return false;
        Cursor value_bytes{};
        if ((summary_key >> 3) == 1 && (summary_key & 7) == kLengthDelimited) {
          std::pair<std::string, float> value;
          if (!inner.bytes(value_bytes) || !decode_value(value_bytes, value)) return false;
          event.scalars.push_back(std::move(value));
        } else if (!inner.skip(uint32_t(summary_key & 7))) {
          return false;
        }
      }
    } else if (!c.skip(type)) {
      return false;
    }
  }
  return true;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || !name[0]) return "localhost";
  std::string host = name;
  std::replace(host.begin(), host.end(), '/', '_');
  return host;
}

constexpr const char* kPrefix = "events.out.tfevents.";
constexpr const char* kSuffix = ".lidartrain";

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto& table = crc32c_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string encode_event(const TfEvent& event) {
  std::string out;
  put_tag(out, 1, kFixed64);
  put_fixed(out, &event.wall_time, 8);
  if (event.step != 0) {
    put_tag(out, 2, kVarint);
    put_varint(out, uint64_t(event.step));
  }
  if (!event.file_version.empty()) put_bytes(out, 3, event.file_version);
  if (!event.scalars.empty()) {
    std::string summary;
    for (const auto& [tag, value] : event.scalars) {
      std::string v;
      put_bytes(v, 1, tag);
      put_tag(v, 2, kFixed32);
      put_fixed(v, &value, 4);
      put_bytes(summary, 1, v);
    }
    put_bytes(out, 5, summary);
  }
  return out;
}

std::string frame_record(const std::string& bytes) {
  std::string out;
  const uint64_t length = bytes.size();
  put_fixed(out, &length, 8);
  const uint32_t length_crc = masked_crc32c(&length, 8), data_crc = masked_crc32c(bytes.data(), bytes.size());
  put_fixed(out, &length_crc, 4);
  out += bytes;
  put_fixed(out, &data_crc, 4);
  return out;
}

std::vector<TfEvent> read_tfevents(const std::string& path, bool strict, size_t* end_offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot be read");
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<TfEvent> events;
  size_t at = 0;
  const auto bad = [&](const std::string& what) {
    if (strict) throw InputError(path + ": not a TensorBoard event file: " + what + " at byte " + std::to_string(at));
  };
  while (at < file.size()) {
    uint64_t length = 0;
    uint32_t length_crc = 0, data_crc = 0;
    if (file.size() - at < 12) {
      bad("a record header cut off");
      break;
    }
    std::memcpy(&length, file.data() + at, 8);
    std::memcpy(&length_crc, file.data() + at + 8, 4);
    if (length_crc != masked_crc32c(&length, 8)) {
      bad("a record length whose CRC does not match");
      break;
    }
    if (length > file.size() - at - 12 || file.size() - at - 12 - length < 4) {
      bad("a record of " + std::to_string(length) + " bytes cut off");
      break;
    }
    const char* data = file.data() + at + 12;
    std::memcpy(&data_crc, data + length, 4);
    if (data_crc != masked_crc32c(data, size_t(length))) {
      bad("a record whose CRC does not match");
      break;
    }
    TfEvent event;
    if (!decode_event({reinterpret_cast<const uint8_t*>(data), reinterpret_cast<const uint8_t*>(data) + length},
                      event)) {
      bad("a record that is no Event");
      break;
    }
    events.push_back(std::move(event));
    at += 12 + size_t(length) + 4;
  }
  if (end_offset) *end_offset = at;
  return events;
}

void TfEventsWriter::open(const std::string& dir, int64_t resume_step, double wall_time) {
  std::string newest;
  if (resume_step >= 0) {
    std::error_code ec;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(kPrefix, 0) == 0 && name.size() > std::strlen(kSuffix) &&
          name.compare(name.size() - std::strlen(kSuffix), std::string::npos, kSuffix) == 0 && name > newest)
        newest = name;
    }
  }
  if (!newest.empty()) {
    // Ours, resumed: the events up to resume_step (and the file version) kept, in their order.
    path_ = (fs::path(dir) / newest).string();
    size_t good_end = 0;
    const std::vector<TfEvent> events = read_tfevents(path_, /*strict=*/false, &good_end);
    std::string kept;
    bool dropped = false;
    for (const TfEvent& event : events) {
      if (event.file_version.empty() && event.step > resume_step) {
        dropped = true;
        continue;
      }
      kept += frame_record(encode_event(event));
    }
    std::error_code ec;
    const uintmax_t size = fs::file_size(path_, ec);
    if (dropped || ec || good_end != size) write_file_atomically(path_, kept);  // also a tail a crash cut off
    file_.open(path_, /*truncate=*/false);
    return;
  }
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%lld", static_cast<long long>(wall_time));
  path_ = (fs::path(dir) / (std::string(kPrefix) + stamp + "." + host_name() + kSuffix)).string();
  // A file of this name (a run started the same second on this host) goes on; never truncated.
  file_.open(path_, /*truncate=*/false);
  std::error_code ec;
  if (fs::file_size(path_, ec) == 0 || ec) {
    TfEvent version;
    version.wall_time = wall_time;
    version.file_version = "brain.Event:2";
    file_.append(frame_record(encode_event(version)));
  }
}

void TfEventsWriter::scalars(int64_t step, double wall_time,
                             const std::vector<std::pair<std::string, double>>& values) {
  std::string records;
  for (const auto& [tag, value] : values) {
    TfEvent event;
    event.wall_time = wall_time;
    event.step = step;
    event.scalars.emplace_back(tag, float(value));
    records += frame_record(encode_event(event));
  }
  file_.append(records);
}

}  // namespace lt
