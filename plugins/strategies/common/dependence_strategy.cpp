#include "dependence_strategy.h"

#include <sgs/io.h>
#include <sgs/seed.h>
#include <sgs/run_log.h>
#include <sgs/errors.h>

#include <H5Cpp.h>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

namespace sgs {

std::function<MeasureResult(const MeasureOptions&, const torch::Tensor&, const ConvSpec&)> DependenceStrategy::measure(
    dependence::Measure measure) {
  return [measure](const MeasureOptions& o, const torch::Tensor& padded, const ConvSpec& spec) {
    dependence::Options options;
    options.measure = measure;
    options.k = o.k;
    options.diagonal_removal = o.diagonal_removal;
    auto r = dependence::compute(padded, spec, options);
    return MeasureResult{r.per_channel, r.dependence, r.scaling};
  };
}

void DependenceOptions::declare(Declare<DependenceOptions>& d) {
  declare_measure(d);
  d.key(&DependenceOptions::batches, "batches", "training batches gathered per update").ge(1);
  d.key(&DependenceOptions::every, "every", "epochs between updates").ge(1);
  d.key(&DependenceOptions::warmup_epochs, "warmup_epochs", "epochs trained with G = 1 before the first update").ge(0);
  d.key(&DependenceOptions::save_features, "save_features",
        "HDF5 file to save the gathered conv inputs to (one update); empty = off")
      .specific_to_run();
  d.key(&DependenceOptions::save_features_update, "save_features_update",
        "which update (0 = the first) save_features saves")
      .ge(0)
      .specific_to_run();
  declare_common(d);
}

DependenceStrategy::DependenceStrategy(const DependenceOptions& o, dependence::Measure measure)
    : ScalingStrategy(o, /*logs_dependence=*/true),
      batches_(o.batches),
      every_(o.every),
      warmup_(o.warmup_epochs),
      save_features_path_(o.save_features),
      save_features_update_(o.save_features_update) {
  options_.measure = measure;
  options_.k = o.k;
  options_.diagonal_removal = o.diagonal_removal;
}

bool DependenceStrategy::update_due(int64_t epochs_done) const {
  return epochs_done >= warmup_ && (epochs_done - warmup_) % every_ == 0;
}

void DependenceStrategy::on_epoch_begin(StrategyContext& ctx) {
  if (!update_due(ctx.epochs_done)) return;
  auto timed = ctx.scaling_time.measure();
  // Every update draws its own batches: the run's seed mixed with the epoch.
  const uint64_t draw_seed =
      mix_seed(ctx.seed ^ seed_tag("dependence batches"), {static_cast<uint64_t>(ctx.epochs_done)});
  std::map<std::string, std::vector<torch::Tensor>> gathered;
  BatchPass pass;
  pass.batches = batches_;
  pass.draw_seed = draw_seed;
  pass.sink = [&](const std::string& path, const torch::Tensor& padded) {
    gathered[path].push_back(padded.clone());  // the input may alias a buffer the forward reuses
  };
  ctx.run_batches(pass);
  // Which update this is: counted from the schedule so that a resumed run agrees.
  const int64_t update_index = (ctx.epochs_done - warmup_) / every_;
  std::map<std::string, torch::Tensor> maps;
  for (auto& block : ctx.convs) {
    auto it = gathered.find(block->path());
    if (it == gathered.end()) continue;
    auto x = torch::cat(it->second);
    it->second.clear();
    auto result = dependence::compute(x, block->spec(), options_, ctx.comm);
    if (torch::isnan(result.scaling).any().item<bool>()) {
      std::cerr << "sgs: warning: " << block->path() << ": dependence undefined (all channels constant?); "
                << "keeping the previous scaling\n";
    } else {
      set_scaling(*block, result.scaling);
      log_scaling(ctx, *block, result.scaling, result.dependence);
    }
    if (!save_features_path_.empty() && update_index == save_features_update_) maps[block->path()] = x;
  }
  if (!maps.empty() && (ctx.comm == nullptr || ctx.comm->rank() == 0)) save_features(maps, ctx);
}

void DependenceStrategy::save_features(const std::map<std::string, torch::Tensor>& maps,
                                       const StrategyContext& ctx) const {
  // The conv inputs without padding (sgs dependence pads them again), float32.
  replace_atomically(save_features_path_, [&](const std::filesystem::path& tmp) {
    H5::Exception::dontPrint();
    try {
      H5::H5File file(tmp.string(), H5F_ACC_TRUNC);
      for (auto& block : ctx.convs) {
        auto it = maps.find(block->path());
        if (it == maps.end()) continue;
        const auto& s = block->spec();
        using torch::indexing::Slice;
        auto x = it->second
                     .index({Slice(), Slice(), Slice(s.padding[0], it->second.size(2) - s.padding[0]),
                             Slice(s.padding[1], it->second.size(3) - s.padding[1])})
                     .to(torch::kCPU, torch::kFloat32)
                     .contiguous();
        std::vector<hsize_t> dims(x.sizes().begin(), x.sizes().end());
        auto ds = file.createDataSet(block->path(), H5::PredType::NATIVE_FLOAT, H5::DataSpace(4, dims.data()));
        ds.write(x.data_ptr<float>(), H5::PredType::NATIVE_FLOAT);
        hsize_t two[1] = {2};
        auto put = [&](const char* name, const std::array<int64_t, 2>& v) {
          ds.createAttribute(name, H5::PredType::NATIVE_INT64, H5::DataSpace(1, two))
              .write(H5::PredType::NATIVE_INT64, v.data());
        };
        put("kernel", s.kernel);
        put("padding", s.padding);
        put("dilation", s.dilation);
        int64_t epoch = ctx.epochs_done;
        ds.createAttribute("scaling_epoch", H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR))
            .write(H5::PredType::NATIVE_INT64, &epoch);
      }
    } catch (const H5::Exception& e) {
      throw IoError(save_features_path_ + ": cannot write the feature maps: " + h5_error_reason(e));
    }
  });
}

}  // namespace sgs
