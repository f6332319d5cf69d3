#pragma once
// Which backend a rank computes on (DESIGN.md §6): `train.device` and `--device` take auto | cpu | cuda.
// auto is CUDA when this rank has a GPU, else the CPU; cuda without one is an error. A rank takes the
// single GPU it sees when the launcher gave it one (Slurm's --gpus-per-task=1, or CUDA_VISIBLE_DEVICES set
// per rank), else the GPU of its node-local index among the visible ones; more ranks on a node than GPUs
// is an error, whether they see several (a local index past them) or share one (require_one_rank_per_gpu).
//
// For tests on machines without a GPU, LIDARTRAIN_CUDA_EMULATION=1 makes the emulated CUDA build
// (kernels/cuda/emu: the same kernel source run on the CPU, slowly) stand in for the GPU, and
// LIDARTRAIN_CUDA_EMULATION_MEMORY=BYTES caps its memory (to exercise out-of-memory errors). Neither is
// for real work. The emulated node has the GPUs CUDA_VISIBLE_DEVICES lists (8 when it is unset), so that
// the choice above runs as on a GPU node, under Slurm's GRES too.
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "mpi/comm.hpp"

namespace lt {

// `key` names the option in errors ("train.device", "--device"). Not collective (call it inside run_agreed).
const Backend& choose_device(const std::string& device, int local_rank, const std::string& key);
// Collective, after choose_device on every rank: two ranks of one host on the same GPU are an error on
// every rank, naming them and the device. Returns each rank's device_identity on rank 0 (empty elsewhere).
std::vector<std::string> require_one_rank_per_gpu(const Comm& comm, const Backend& backend);
// The GPU this rank chose ("0000:3b:00.0", its PCI bus id; "emulated 1"), empty on the CPU.
std::string device_identity(const Backend& backend);

// fp32 | bf16 | fp16 (train.precision, --precision: kernels/backend.hpp's Precision); `key` names the
// option in the error for anything else.
Precision parse_precision(const std::string& text, const std::string& key);
// The precision of `backend`'s GEMMs from now on: a 16-bit one on a backend that multiplies in fp32 only
// (the CPU) is an error naming `key`.
void use_precision(const Backend& backend, Precision precision, const std::string& key);

// "cpu", or "cuda: <device name> …" (for logs).
std::string describe_device(const Backend& backend);

}  // namespace lt
