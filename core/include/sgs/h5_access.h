// How sgs opens HDF5 files: without HDF5's file lock, so that readers (sgs
// report / plot, plotting scripts) may open a run.h5 while its run appends
// to it (each epoch's rows are flushed before they are read).
#pragma once

#include <H5Cpp.h>

namespace sgs {

H5::FileAccPropList h5_access_without_lock();

}  // namespace sgs
