#include <sgs/checkpoint_file.h>
#include <sgs/errors.h>
#include <sgs/io.h>
#include <sgs/run_file.h>

#include <zlib.h>

#include <cstdint>
#include <algorithm>
#include <cstdio>
#include <cstring>

namespace sgs {

std::string config_digest(const std::string& config_json) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : config_json) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

RunIdentity run_dir_identity(const std::filesystem::path& dir) {
  const auto cfg = dir / "config.json";
  if (!std::filesystem::exists(cfg))
    throw ConfigError(cfg.string() + ": missing; the checkpoint beside it cannot be matched to its run without it");
  RunIdentity id;
  id.config_digest = config_digest(read_file(cfg));
  const auto h5 = dir / "run.h5";
  if (std::filesystem::exists(h5)) id.run_id = read_run_file(h5.string(), kRunAttributes).run_id;
  return id;
}

std::string check_checkpoint_identity(const std::optional<RunIdentity>& recorded, const RunIdentity& expected,
                                      const std::string& checkpoint_path) {
  if (!recorded)
    return checkpoint_path + ": written before checkpoints named their run; it is taken as this directory's";
  auto shown = [](const std::string& s) { return s.empty() ? std::string("(none)") : s; };
  const bool same_run = expected.run_id.empty() || recorded->run_id == expected.run_id;
  if (same_run && recorded->config_digest == expected.config_digest) return "";
  throw ConfigError(checkpoint_path + ": belongs to run " + shown(recorded->run_id) + " (config " +
                    recorded->config_digest + "), not to this directory's run " + shown(expected.run_id) +
                    " (config " + expected.config_digest + "): a checkpoint copied from another run is not resumed, "
                    "fused or exported");
}

namespace {

// Little-endian reads within the archive; out of range = truncated.
struct Reader {
  const std::string& b;
  const std::string& path;
  [[noreturn]] void bad(const std::string& why) const {
    throw DataError(path + ": not a valid checkpoint (" + why + "); it cannot be resumed or fused");
  }
  uint64_t get(uint64_t at, int bytes) const {
    if (at + static_cast<uint64_t>(bytes) > b.size()) bad("truncated");
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<uint64_t>(i)]);
    return v;
  }
};

constexpr uint32_t kEndOfDirectory = 0x06054b50, kZip64End = 0x06064b50, kZip64Locator = 0x07064b50,
                   kDirectoryEntry = 0x02014b50, kLocalHeader = 0x04034b50;

}  // namespace

void verify_checkpoint(const std::string& bytes, const std::string& path) {
  if (bytes.empty()) throw DataError(path + ": the checkpoint is empty (0 bytes); it cannot be resumed or fused");
  Reader r{bytes, path};
  // The end-of-directory record: 22 bytes plus a comment of up to 64 KiB, at the end.
  if (bytes.size() < 22) r.bad("truncated");
  int64_t eocd = -1;
  const uint64_t lowest = bytes.size() > 22 + 65535 ? bytes.size() - 22 - 65535 : 0;
  for (uint64_t at = bytes.size() - 22 + 1; at-- > lowest;)
    if (r.get(at, 4) == kEndOfDirectory && at + 22 + r.get(at + 20, 2) == bytes.size()) {
      eocd = static_cast<int64_t>(at);
      break;
    }
  if (eocd < 0) r.bad("no zip directory at its end: truncated or not a checkpoint");
  const auto e = static_cast<uint64_t>(eocd);
  uint64_t entries = r.get(e + 10, 2), dir_size = r.get(e + 12, 4), dir_at = r.get(e + 16, 4);
  if (entries == 0xFFFF || dir_size == 0xFFFFFFFF || dir_at == 0xFFFFFFFF) {  // zip64
    if (e < 20 || r.get(e - 20, 4) != kZip64Locator) r.bad("zip64 locator missing");
    const uint64_t z = r.get(e - 20 + 8, 8);
    if (r.get(z, 4) != kZip64End) r.bad("zip64 directory record missing");
    entries = r.get(z + 32, 8);
    dir_size = r.get(z + 40, 8);
    dir_at = r.get(z + 48, 8);
  }
  if (entries == 0) r.bad("no records");
  if (dir_at + dir_size > bytes.size()) r.bad("truncated");
  uint64_t at = dir_at;
  for (uint64_t i = 0; i < entries; ++i) {
    if (r.get(at, 4) != kDirectoryEntry) r.bad("damaged zip directory");
    const uint64_t method = r.get(at + 10, 2), crc = r.get(at + 16, 4), name_len = r.get(at + 28, 2),
                   extra_len = r.get(at + 30, 2), comment_len = r.get(at + 32, 2);
    uint64_t compressed = r.get(at + 20, 4), size = r.get(at + 24, 4), local = r.get(at + 42, 4);
    const std::string name = bytes.substr(at + 46, name_len);
    // The zip64 extra field holds, in order, the 64-bit values of the fields set to 0xFFFFFFFF.
    for (uint64_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = r.get(x, 2), len = r.get(x + 2, 2);
      if (id == 0x0001) {
        uint64_t f = x + 4;
        if (size == 0xFFFFFFFF) size = r.get(f, 8), f += 8;
        if (compressed == 0xFFFFFFFF) compressed = r.get(f, 8), f += 8;
        if (local == 0xFFFFFFFF) local = r.get(f, 8);
      }
      x += 4 + len;
    }
    if (method != 0 && method != 8) r.bad("record '" + name + "' uses an unknown compression");
    if (method == 0 && compressed != size) r.bad("record '" + name + "' has inconsistent sizes");
    if (r.get(local, 4) != kLocalHeader) r.bad("record '" + name + "' has no header");
    const uint64_t data = local + 30 + r.get(local + 26, 2) + r.get(local + 28, 2);
    if (data + compressed > bytes.size()) r.bad("truncated");
    const auto* in = reinterpret_cast<const Bytef*>(bytes.data() + data);
    uLong c = crc32(0L, Z_NULL, 0);
    if (method == 0) {
      for (uint64_t done = 0; done < size;) {  // crc32 takes 32-bit lengths
        const uint64_t n = std::min<uint64_t>(size - done, 1u << 30);
        c = crc32(c, in + done, static_cast<uInt>(n));
        done += n;
      }
    } else {  // deflate (LibTorch compresses small records such as its code files)
      if (compressed > (1u << 30) || size > (1u << 30)) r.bad("record '" + name + "' is too large to check");
      std::string plain(size, '\0');
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK) r.bad("cannot inflate record '" + name + "'");
      z.next_in = const_cast<Bytef*>(in);
      z.avail_in = static_cast<uInt>(compressed);
      z.next_out = reinterpret_cast<Bytef*>(plain.data());
      z.avail_out = static_cast<uInt>(size);
      const int rc = inflate(&z, Z_FINISH);
      const uLong produced = z.total_out;
      inflateEnd(&z);
      if (rc != Z_STREAM_END || produced != size)
        r.bad("record '" + name + "' does not inflate: the file is corrupted");
      c = crc32(c, reinterpret_cast<const Bytef*>(plain.data()), static_cast<uInt>(size));
    }
    if (c != crc) r.bad("record '" + name + "' fails its CRC-32 check: the file is corrupted");
    at += 46 + name_len + extra_len + comment_len;
  }
}

}  // namespace sgs
