// Checkpoints are verified before they are loaded. LibTorch writes them as
// zip archives with a CRC-32 per record but does not check those CRCs when
// reading (its miniz is built without them), so flipped bytes would load as
// silently corrupted weights. verify_checkpoint checks the archive's
// structure and every record's CRC-32.
#pragma once

#include <string>

namespace sgs {

// Throws DataError "PATH: ..." naming what is wrong (empty, truncated, not a
// checkpoint, a record whose CRC does not match).
void verify_checkpoint(const std::string& bytes, const std::string& path);

}  // namespace sgs
