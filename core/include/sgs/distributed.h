// Data-parallel runs on PyTorch's c10d: where this process sits in the job,
// the c10d-backed Communicator and the collectives the trainer needs (the
// local launcher behind `sgs run --nproc N` is app/launch/launcher.h).
//
// A job is W processes (ranks). They meet through a c10d TCPStore served by
// rank 0 at MASTER_ADDR:MASTER_PORT, then talk through a process group:
// NCCL when training on CUDA and the build has it (SGS_C10D_NCCL), Gloo
// otherwise. Every collective waits at most `timeout`: a rank that died makes
// the others fail with an error naming the operation instead of hanging.
#pragma once

#include <sgs/communicator.h>
#include <sgs/world.h>

#include <torch/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace sgs {

// The device a rank trains on: config "cpu" | "cuda" | "auto"; CUDA ranks
// take device LOCAL_RANK (modulo the devices visible).
torch::Device rank_device(const std::string& config_device, const World& world);

// Joins the job (blocks until all ranks are there, at most `timeout`).
// Collectives take tensors on `device` (others are staged through it).
std::unique_ptr<Communicator> connect(const World& world, const torch::Device& device,
                                      std::chrono::milliseconds timeout = kDefaultDistTimeout);

// Gradients of `params` summed over ranks and multiplied by `scale`, in
// buckets of about `bucket_bytes` (one all-reduce each; grads flattened into
// the bucket and copied back). A parameter without a gradient counts as zero.
void all_reduce_gradients(const std::vector<torch::Tensor>& params, Communicator& comm, double scale,
                          int64_t bucket_bytes = 25 << 20);

// Every parameter and buffer of `module` set to root's.
void broadcast_module(torch::nn::Module& module, Communicator& comm, int root = 0);

// `bytes` set to root's (any length).
void broadcast_bytes(std::string& bytes, Communicator& comm, int root = 0);

}  // namespace sgs
