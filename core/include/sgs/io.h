// Files that are never seen half-written: everything sgs writes for a run
// (config.json, run.h5, checkpoint.pt, reports, figures) goes to a temporary
// name beside its target, is flushed to disk and renamed over the target, so
// a reader or a crash sees either the old file or the new one. On failure
// (disk full, EIO, no permission) the temporary file is removed, the target is
// left as it was, and an IoError names the file and the system's reason.
#pragma once

#include <sgs/errors.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace sgs {

// The temporary name a file is written under before its rename:
// "F.tmp.HOST.PID", so that two processes writing the same file (a suite's
// processes sharing a folder, on one node or several) never write into each
// other's temporary.
std::filesystem::path temporary_path(const std::filesystem::path& target);

// Removes what a killed writer left of `target`: every "F.tmp" and "F.tmp.*".
// Only for a file that this process alone writes (a run directory's, under
// its lock).
void remove_temporaries(const std::filesystem::path& target) noexcept;

// Writes `content` to `target` atomically (see above).
void write_file_atomically(const std::filesystem::path& target, std::string_view content);

// For writers that produce the file themselves (HDF5, torch archives):
// `write(tmp)` writes the temporary file, which is then synced and renamed.
// Any exception from `write` removes the temporary and is rethrown.
void replace_atomically(const std::filesystem::path& target,
                        const std::function<void(const std::filesystem::path& tmp)>& write);

// fsync of a file and of a directory (its entries: a rename is durable).
void sync_file(const std::filesystem::path& path);
void sync_directory(const std::filesystem::path& dir);

// Removes `path` if it exists, ignoring errors (cleanup after a failure).
void remove_quietly(const std::filesystem::path& path) noexcept;

// The whole file as bytes; IoError naming it when it cannot be read.
std::string read_file(const std::filesystem::path& path);

// "PATH: what: strerror(errno)".
[[noreturn]] void throw_io_error(const std::filesystem::path& path, const std::string& what, int error_number);

}  // namespace sgs
