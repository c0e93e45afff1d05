// HDF5 helpers of the run file's writer (run_log.cpp) and reader
// (run_file.cpp), private to core.
#pragma once

#include <sgs/errors.h>
#include <sgs/h5_access.h>

#include <H5Cpp.h>

#include <string>

namespace sgs {

// The reason an HDF5 call failed (declared in sgs/run_log.h).
std::string h5_error_reason(const H5::Exception& e);

namespace h5 {

// Runs `body`, turning HDF5's exceptions into `Error` ("PATH: cannot WHAT: reason").
template <class Error = IoError, class F>
auto guarded(const std::string& path, const char* what, F&& body) {
  H5::Exception::dontPrint();
  try {
    return body();
  } catch (const H5::Exception& e) {
    throw Error(path + ": cannot " + what + ": " + h5_error_reason(e));
  }
}

// Opens run.h5 without HDF5's file lock; errors name the file and what was tried.
template <class Error = IoError>
H5::H5File open_file(const std::string& path, unsigned flags, const char* what) {
  return guarded<Error>(path, what,
                        [&] { return H5::H5File(path, flags, H5::FileCreatPropList::DEFAULT, h5_access_without_lock()); });
}

inline bool has_link(const H5::Group& g, const std::string& name) {
  return H5Lexists(g.getId(), name.c_str(), H5P_DEFAULT) > 0;
}

// A string attribute, "" when absent.
inline std::string string_attr(const H5::H5Object& obj, const std::string& name) {
  std::string v;
  if (!obj.attrExists(name)) return v;
  auto a = obj.openAttribute(name);
  a.read(a.getStrType(), v);
  return v;
}

}  // namespace h5
}  // namespace sgs
