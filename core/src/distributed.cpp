#include <sgs/distributed.h>
#include <sgs/errors.h>

#include <torch/torch.h>
#include <torch/version.h>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SGS_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SGS_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>

namespace sgs {

namespace {

std::string error_text(const std::exception& e) {
  if (auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return c10d::ReduceOp::SUM;
    case ReduceOp::Min: return c10d::ReduceOp::MIN;
    case ReduceOp::Max: return c10d::ReduceOp::MAX;
  }
  return c10d::ReduceOp::SUM;
}

// A Communicator on one c10d process group (ProcessGroupGloo or
// ProcessGroupNCCL: the same calls exist on both in LibTorch 1.13 and 2.x).
template <class Group>
class GroupCommunicator : public Communicator {
 public:
  GroupCommunicator(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<Group> group, const World& world,
                    torch::Device device, std::chrono::milliseconds timeout, std::string backend)
      : store_(std::move(store)), group_(std::move(group)), world_(world), device_(device), timeout_(timeout),
        backend_(std::move(backend)) {}

  int rank() const override { return world_.rank; }
  int world_size() const override { return world_.world_size; }

  void all_reduce(torch::Tensor& tensor, ReduceOp op) override {
    run("all_reduce", tensor, [&](std::vector<at::Tensor>& v) {
      c10d::AllreduceOptions o;
      o.reduceOp = to_c10d(op);
      o.timeout = timeout_;
      return group_->allreduce(v, o);
    });
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    run("broadcast", tensor, [&](std::vector<at::Tensor>& v) {
      c10d::BroadcastOptions o;
      o.rootRank = root;
      o.timeout = timeout_;
      return group_->broadcast(v, o);
    });
  }

 private:
  template <class Op>
  void run(const char* what, torch::Tensor& tensor, const Op& op) {
    // The group wants dense tensors on its device (NCCL: CUDA).
    const bool stage = !tensor.is_contiguous() || (backend_ == "nccl" && tensor.device() != device_);
    std::vector<at::Tensor> v{stage ? tensor.to(backend_ == "nccl" ? device_ : tensor.device()).contiguous() : tensor};
    try {
      auto work = op(v);
      work->wait(timeout_);
    } catch (const std::exception& e) {
      throw std::runtime_error("distributed " + std::string(what) + " failed on rank " + std::to_string(world_.rank) +
                               " of " + std::to_string(world_.world_size) + " (" + backend_ +
                               "): " + error_text(e) + " (has another rank stopped or died?)");
    }
    if (stage) tensor.copy_(v[0]);
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Group> group_;
  World world_;
  torch::Device device_;
  std::chrono::milliseconds timeout_;
  std::string backend_;
};

// One process: every collective is the identity.
class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void all_reduce(torch::Tensor&, ReduceOp) override {}
  void broadcast(torch::Tensor&, int) override {}
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

torch::Device rank_device(const std::string& config_device, const World& world) {
  if (config_device == "cuda" || (config_device == "auto" && torch::cuda::is_available())) {
    if (!torch::cuda::is_available())
      throw ConfigError("device: 'cuda' requested but this LibTorch build has no usable CUDA device");
    const auto count = static_cast<int>(torch::cuda::device_count());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world.local_rank % count));
  }
  return torch::Device(torch::kCPU);
}

std::unique_ptr<Communicator> connect(const World& world, const torch::Device& device,
                                      std::chrono::milliseconds timeout) {
  if (world.world_size == 1) return std::make_unique<SingleCommunicator>();
  const std::string where = " (rank " + std::to_string(world.rank) + " of " + std::to_string(world.world_size) +
                            ", rendezvous at " + world.master_addr + ":" + std::to_string(world.master_port) + ")";
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(world.master_port);
    so.isServer = world.rank == 0;
    so.numWorkers = static_cast<std::size_t>(world.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    // The store's libuv server (LibTorch's default since 2.4) is not in every
    // build (Debian 13's LibTorch 2.6 refuses it); the classic one is, and
    // serves the few ranks of a job as well.
    so.useLibUV = false;
#endif
    store = c10::make_intrusive<c10d::TCPStore>(world.master_addr, so);
  } catch (const std::exception& e) {
    throw std::runtime_error("distributed: rendezvous failed" + where + ": " + error_text(e));
  }
#ifdef SGS_C10D_NCCL
  if (device.is_cuda()) {
    // Blocking waits make NCCL honour the timeout (a dead rank -> an error).
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
    setenv("NCCL_BLOCKING_WAIT", "1", 0);
    c10::cuda::set_device(device.index());
    try {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, world.rank, world.world_size, options);
      return std::make_unique<GroupCommunicator<c10d::ProcessGroupNCCL>>(store, group, world, device, timeout,
                                                                          "nccl");
    } catch (const std::exception& e) {
      throw std::runtime_error("distributed: cannot create the NCCL process group" + where + ": " + error_text(e));
    }
  }
#endif
#ifdef SGS_C10D_GLOO
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (is_loopback(world.master_addr))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 2;
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, world.rank, world.world_size, options);
    return std::make_unique<GroupCommunicator<c10d::ProcessGroupGloo>>(store, group, world, device, timeout, "gloo");
  } catch (const std::exception& e) {
    throw std::runtime_error("distributed: cannot create the Gloo process group" + where + ": " + error_text(e));
  }
#else
  (void)device;
  throw ConfigError("distributed: this build has no c10d process group (built without SGS_C10D_GLOO: gloo "
                    "headers not found); " + std::to_string(world.world_size) + " ranks requested");
#endif
}

void all_reduce_gradients(const std::vector<torch::Tensor>& params, Communicator& comm, double scale,
                          int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    auto& g = const_cast<torch::Tensor&>(p).mutable_grad();
    if (!g.defined()) g = torch::zeros_like(p);
    grads.push_back(g);
  }
  size_t i = 0;
  while (i < grads.size()) {
    // A bucket: consecutive grads of one dtype and device, up to bucket_bytes.
    size_t j = i;
    int64_t bytes = 0;
    while (j < grads.size() && grads[j].scalar_type() == grads[i].scalar_type() &&
           grads[j].device() == grads[i].device() &&
           (j == i || bytes + grads[j].numel() * static_cast<int64_t>(grads[j].element_size()) <= bucket_bytes)) {
      bytes += grads[j].numel() * static_cast<int64_t>(grads[j].element_size());
      ++j;
    }
    std::vector<torch::Tensor> flat;
    for (size_t k = i; k < j; ++k) flat.push_back(grads[k].reshape({-1}));
    auto bucket = torch::cat(flat);
    comm.all_reduce(bucket, ReduceOp::Sum);
    if (scale != 1.0) bucket.mul_(scale);
    int64_t offset = 0;
    for (size_t k = i; k < j; ++k) {
      const int64_t n = grads[k].numel();
      grads[k].copy_(bucket.narrow(0, offset, n).view_as(grads[k]));
      offset += n;
    }
    i = j;
  }
}

void broadcast_module(torch::nn::Module& module, Communicator& comm, int root) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    auto t = p.detach();
    comm.broadcast(t, root);
  }
  for (auto& b : module.buffers()) {
    auto t = b.detach();
    comm.broadcast(t, root);
  }
}

void broadcast_bytes(std::string& bytes, Communicator& comm, int root) {
  auto size = torch::tensor(static_cast<int64_t>(bytes.size()), torch::kInt64);
  comm.broadcast(size, root);
  const int64_t n = size.item<int64_t>();
  auto data = torch::empty({n}, torch::kUInt8);
  if (comm.rank() == root && n > 0) std::memcpy(data.data_ptr(), bytes.data(), static_cast<size_t>(n));
  if (n > 0) comm.broadcast(data, root);
  bytes.assign(reinterpret_cast<const char*>(data.data_ptr()), static_cast<size_t>(n));
}

}  // namespace sgs
