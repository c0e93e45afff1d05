// Helpers of the data tests: a fresh temporary folder per test, writers of
// small files, and datasets built through the registry like a run builds them.
#pragma once

#include <sgs/dataset.h>
#include <sgs/registry.h>

#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace sgs_test {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("sgs_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline void write_bytes(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline void write_gzip(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  gzFile f = gzopen(path.string().c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot write " + path.string());
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

inline Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

// IDX images [n, rows, cols] with pixel(i, y, x), and IDX labels.
template <class Pixel>
Bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols, Pixel pixel) {
  Bytes b;
  put_be32(b, 0x00000803);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t y = 0; y < rows; ++y)
      for (uint32_t x = 0; x < cols; ++x) b.push_back(static_cast<uint8_t>(pixel(i, y, x)));
  return b;
}

inline Bytes idx_labels(const std::vector<uint8_t>& labels) {
  Bytes b;
  put_be32(b, 0x00000801);
  put_be32(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

// Resolves `keys` against the plugin's schema (as the config does) and builds it.
inline std::shared_ptr<sgs::Dataset> make_dataset(const std::string& name, sgs::Json keys, uint64_t seed = 0) {
  const auto& info = sgs::Registry::global().get("dataset", name);
  keys["name"] = name;
  sgs::Options o(sgs::resolve_object(keys, "dataset", info.schema, {"name"}), "dataset");
  return sgs::Registry::global().factory<sgs::DatasetKind>(name)(o, seed);
}

inline int64_t numel(const sgs::Split& s) { return s.shape()[0] * s.shape()[1] * s.shape()[2]; }

inline std::vector<float> fill(const sgs::Split& s, int64_t index, bool augment = false, uint64_t seed = 0,
                               int64_t* label = nullptr) {
  std::vector<float> out(static_cast<std::size_t>(numel(s)));
  int64_t l = s.fill(index, augment, seed, out.data());
  if (label != nullptr) *label = l;
  return out;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace sgs_test
