// Checkpoints are verified before they are loaded. LibTorch writes them as
// zip archives with a CRC-32 per record but does not check those CRCs when
// reading (its miniz is built without them), so flipped bytes would load as
// silently corrupted weights. verify_checkpoint checks the archive's
// structure and every record's CRC-32.
//
// A checkpoint also names the run it belongs to (RunIdentity): the run_id of
// the run's run.h5 and a digest of its config.json, so that a checkpoint
// copied from another run is refused by --resume, fuse, export and quantize.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace torch::serialize {
class InputArchive;
class OutputArchive;
}  // namespace torch::serialize

namespace sgs {

// Throws DataError "PATH: ..." naming what is wrong (empty, truncated, not a
// checkpoint, a record whose CRC does not match).
void verify_checkpoint(const std::string& bytes, const std::string& path);

struct RunIdentity {
  std::string run_id;         // the root attribute "run_id" of run.h5
  std::string config_digest;  // config_digest() of config.json's bytes
};

// 16 hexadecimal digits (64-bit FNV-1a) of config.json's bytes: written once
// when the run starts and never rewritten, so stable across resumes and builds.
std::string config_digest(const std::string& config_json);

// The identity of the run in `dir` from its run.h5 and config.json. Throws
// ConfigError naming config.json when it is missing, DataError when a file
// cannot be read.
RunIdentity run_dir_identity(const std::filesystem::path& dir);

// Checks the identity a checkpoint records (nullopt: written before
// checkpoints named their run) against the run directory's. Throws
// ConfigError "CKPT: belongs to run A (config X), not to this directory's run
// B (config Y): ..." on a mismatch; returns a warning line for a checkpoint
// without identity, "" otherwise.
std::string check_checkpoint_identity(const std::optional<RunIdentity>& recorded, const RunIdentity& expected,
                                      const std::string& checkpoint_path);

// The identity records of a checkpoint archive (core/src/run_identity.cpp).
void write_identity(torch::serialize::OutputArchive& archive, const RunIdentity& identity);
std::optional<RunIdentity> read_identity(torch::serialize::InputArchive& archive);

}  // namespace sgs
