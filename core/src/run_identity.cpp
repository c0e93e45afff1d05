#include <sgs/checkpoint_file.h>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/torch.h>

#include <vector>

namespace sgs {

namespace {

torch::Tensor text_tensor(const std::string& s) {
  return torch::tensor(std::vector<int64_t>(s.begin(), s.end()), torch::kLong).to(torch::kUInt8);
}

std::optional<std::string> read_text(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  if (!archive.try_read(key, t)) return std::nullopt;
  t = t.to(torch::kCPU, torch::kUInt8).contiguous();
  const auto* p = t.data_ptr<uint8_t>();
  return std::string(p, p + t.numel());
}

}  // namespace

void write_identity(torch::serialize::OutputArchive& archive, const RunIdentity& identity) {
  archive.write("run_id", text_tensor(identity.run_id));
  archive.write("config_digest", text_tensor(identity.config_digest));
}

std::optional<RunIdentity> read_identity(torch::serialize::InputArchive& archive) {
  auto id = read_text(archive, "run_id"), digest = read_text(archive, "config_digest");
  if (!id || !digest) return std::nullopt;
  return RunIdentity{*id, *digest};
}

}  // namespace sgs
