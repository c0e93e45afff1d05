// sgs dependence FILE.h5 --dataset NAME [...]: the dependence matrix and the
// scaling G of one feature map, exactly as training would compute them.
#include "verb.h"

#include <sgs/errors.h>
#include <sgs/measure.h>
#include <sgs/registry.h>
#include <sgs/schema.h>

#include <H5Cpp.h>
#include <torch/torch.h>

#include <iostream>

namespace {

torch::Tensor read_feature_map(const std::string& file, const std::string& name) {
  H5::Exception::dontPrint();
  H5::H5File f;
  try {
    f = H5::H5File(file, H5F_ACC_RDONLY);
  } catch (const H5::Exception&) {
    throw sgs::DataError(file + ": cannot open as HDF5");
  }
  if (H5Lexists(f.getId(), name.c_str(), H5P_DEFAULT) <= 0)
    throw sgs::DataError(file + ": no dataset '" + name + "'");
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  const bool is_dataset = H5Oget_info_by_name(f.getId(), name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0 &&
#else
  const bool is_dataset = H5Oget_info_by_name(f.getId(), name.c_str(), &info, H5P_DEFAULT) >= 0 &&
#endif
                          info.type == H5O_TYPE_DATASET;
  if (!is_dataset) throw sgs::DataError(file + ": '" + name + "' is a group, not a dataset (name a feature map in it)");
  H5::DataSet ds;
  try {
    ds = f.openDataSet(name);
  } catch (const H5::Exception& e) {
    throw sgs::DataError(file + ": cannot open dataset '" + name + "': " + e.getDetailMsg());
  }
  auto space = ds.getSpace();
  if (space.getSimpleExtentNdims() != 4)
    throw sgs::DataError(file + ": " + name + ": expected a 4-d [N, C, H, W] feature map, got " +
                         std::to_string(space.getSimpleExtentNdims()) + " dimensions");
  hsize_t dims[4];
  space.getSimpleExtentDims(dims);
  auto x = torch::empty({static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1]), static_cast<int64_t>(dims[2]),
                         static_cast<int64_t>(dims[3])},
                        torch::kFloat32);
  if (x.size(0) == 0 || x.size(1) == 0)
    throw sgs::DataError(file + ": " + name + ": the feature map holds no examples or channels (shape " +
                         std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + "x" + std::to_string(dims[2]) + "x" +
                         std::to_string(dims[3]) + ")");
  try {
    ds.read(x.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
  } catch (const H5::Exception& e) {
    throw sgs::DataError(file + ": " + name + ": cannot read it as float32: " + e.getDetailMsg());
  }
  const int64_t bad = x.numel() - torch::isfinite(x).sum().item<int64_t>();
  if (bad > 0)
    throw sgs::DataError(file + ": " + name + ": " + std::to_string(bad) +
                         " values are NaN or infinite (a feature map must be finite)");
  return x;
}

sgs::Json matrix_json(const torch::Tensor& m) {
  auto c = m.to(torch::kCPU, torch::kFloat64).contiguous();
  sgs::Json out = sgs::Json::array();
  for (int64_t i = 0; i < c.size(0); ++i) {
    sgs::Json row = sgs::Json::array();
    for (int64_t j = 0; j < c.size(1); ++j) {
      double v = c[i][j].item<double>();
      row.push_back(std::isfinite(v) ? sgs::Json(v) : sgs::Json(nullptr));
    }
    out.push_back(row);
  }
  return out;
}

int run_dependence(const std::vector<std::string>& args) {
  namespace po = sgs::cli::po;
  po::options_description opts("options");
  std::string file, dataset, measure = "mutual_information";
  double k = 5;
  std::vector<int64_t> kernel{3}, padding{1}, dilation{1};
  int64_t threads = 0;
  opts.add_options()("file", po::value(&file)->required(), "HDF5 file holding float32 [N, C, H, W] feature maps")(
      "dataset", po::value(&dataset)->required(), "name of the feature map in the file (e.g. features.4)")(
      "measure", po::value(&measure), "a registered measure: mutual_information (default) | autocorrelation (see sgs plugins measure)")(
      "k", po::value(&k), "k of the transform (default 5)")(
      "kernel", po::value(&kernel)->multitoken(), "kernel size: K or KH KW (default 3)")(
      "padding", po::value(&padding)->multitoken(), "zero padding: P or PH PW (default 1)")(
      "dilation", po::value(&dilation)->multitoken(), "dilation: D or DH DW (default 1)")(
      "diag-removal", "drop pairs with a zero and the joint histogram's diagonal")(
      "per-channel", "also print the per-channel matrices")(
      "threads", po::value(&threads), "intra-op threads (default: all cores)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!sgs::cli::parse_args("dependence", "FILE.h5 --dataset NAME [--measure M] [--k 5] [--kernel 3] [--padding 1]",
                            args, opts, pos, vm))
    return 0;
  auto pair = [](const std::vector<int64_t>& v, const char* name) {
    if (v.empty() || v.size() > 2) throw sgs::ConfigError(std::string("--") + name + ": expected 1 or 2 values");
    for (auto x : v)
      if (x < 0) throw sgs::ConfigError(std::string("--") + name + ": must be >= 0");
    return std::array<int64_t, 2>{v[0], v.size() == 2 ? v[1] : v[0]};
  };
  sgs::ConvSpec spec;
  spec.kernel = pair(kernel, "kernel");
  spec.padding = pair(padding, "padding");
  spec.dilation = pair(dilation, "dilation");
  if (spec.kernel[0] < 1 || spec.kernel[1] < 1 || spec.dilation[0] < 1 || spec.dilation[1] < 1)
    throw sgs::ConfigError("--kernel and --dilation: must be >= 1");
  if (!(k > 0)) throw sgs::ConfigError("--k: must be > 0");
  const auto& reg = sgs::Registry::global();
  const sgs::PluginInfo* info;
  try {
    info = &reg.get(sgs::MeasureKind::kName, measure);
  } catch (const sgs::ConfigError& e) {
    throw sgs::ConfigError(std::string("--measure: ") + e.what());
  }
  const sgs::Json keys{{"k", k}, {"diagonal_removal", vm.count("diag-removal") > 0}};
  const sgs::Options o(sgs::resolve_object(keys, "", info->schema), "");
  at::set_num_threads(threads > 0 ? static_cast<int>(threads) : static_cast<int>(std::thread::hardware_concurrency()));
  auto x = read_feature_map(file, dataset);
  spec.in_channels = x.size(1);
  for (int d = 0; d < 2; ++d) {
    const int64_t reach = spec.dilation[d] * (spec.kernel[d] - 1) + 1, size = x.size(2 + d) + 2 * spec.padding[d];
    if (reach > size)
      throw sgs::ConfigError("--kernel: a " + std::to_string(spec.kernel[0]) + "x" + std::to_string(spec.kernel[1]) +
                             " kernel (dilation " + std::to_string(spec.dilation[d]) + ") does not fit the " +
                             std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) + " map padded by " +
                             std::to_string(spec.padding[d]));
  }
  auto result = reg.factory<sgs::MeasureKind>(measure)(o, sgs::pad_input(x, spec), spec);
  sgs::Json out = {{"dependence", matrix_json(result.dependence)}, {"scaling", matrix_json(result.scaling)}};
  if (vm.count("per-channel")) {
    sgs::Json pc = sgs::Json::array();
    for (int64_t c = 0; c < result.per_channel.size(0); ++c) pc.push_back(matrix_json(result.per_channel[c]));
    out["per_channel"] = pc;
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

SGS_VERB("dependence", "dependence and scaling matrices of a feature map stored in an HDF5 file", run_dependence)
