// NPU regions for edgecc-runner: the packed function `edgecc.npu_region` a library built for an NPU
// target calls once per region (edgecc/lower/npu.py), and what serves it.
//
// The call passes the region's key, its inputs, then its outputs (destination passing; 4-D tensors
// as NHWC, as the region's model takes them). The library's metadata ("npu" entry) lists each
// region's key, its numbers of inputs and outputs and, base64, the NPU compiler's model (Vela's,
// whose `ethos-u` custom operator holds the command stream and weights).
//
// One interface, `RegionRunner`, and two implementations:
//   HostRegionRunner (npu_host.h)      under emulation: the host process runs the region
//                                      (`--npu-host READ_FD,WRITE_FD`, edgecc.runtime.emulated)
//   DelegateRegionRunner (npu_tflite.h) on the board: TensorFlow Lite's C library with the NPU's
//                                      external delegate (NXP's Ethos-U delegate on the i.MX 93)
#pragma once

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/function.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgecc_npu {

namespace ffi = tvm::ffi;
using ffi::Tensor;

struct Region {
  std::string key;
  size_t num_inputs = 0, num_outputs = 0;
  std::string npu_model_base64;  // the NPU compiler's model, as the metadata holds it
  std::string reference_base64;  // the model before the NPU compiler (TFLite builtin operators)
};

// What runs a library's NPU regions.
class RegionRunner {
 public:
  virtual ~RegionRunner() = default;
  // Run `region` on `inputs`, writing `outputs` (CPU tensors, contiguous, in the region's order).
  virtual void Run(const Region& region, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) = 0;
};

inline size_t NumBytes(const Tensor& t) { return ffi::GetDataSize(t); }
inline char* Data(const Tensor& t) { return static_cast<char*>(t.data_ptr()) + t.byte_offset(); }

// The regions of a library's metadata (none for a library without NPU regions).
inline std::map<std::string, Region> ReadRegions(const ffi::json::Object& meta) {
  std::map<std::string, Region> regions;
  auto npu = meta.find(ffi::String("npu"));
  if (npu == meta.end()) return regions;
  for (const ffi::Any& item : (*npu).second.cast<ffi::json::Object>().at(ffi::String("regions")).cast<ffi::json::Array>()) {
    auto entry = item.cast<ffi::json::Object>();
    Region region;
    region.key = entry.at(ffi::String("key")).cast<ffi::String>();
    region.num_inputs = entry.at(ffi::String("nhwc_inputs")).cast<ffi::json::Array>().size();
    region.num_outputs = entry.at(ffi::String("nhwc_outputs")).cast<ffi::json::Array>().size();
    region.npu_model_base64 = entry.at(ffi::String("npu_model")).cast<ffi::String>();
    region.reference_base64 = entry.at(ffi::String("reference_tflite")).cast<ffi::String>();
    regions[region.key] = region;
  }
  return regions;
}

// The regions of the loaded library and their runner, which `edgecc.npu_region` dispatches to.
struct Regions {
  std::map<std::string, Region> table;
  std::unique_ptr<RegionRunner> runner;
};

inline Regions& LoadedRegions() {
  static Regions regions;
  return regions;
}

inline void CallRegion(ffi::PackedArgs args, ffi::Any*) {
  Regions& loaded = LoadedRegions();
  std::string key = args[0].cast<ffi::String>();
  auto found = loaded.table.find(key);
  if (found == loaded.table.end()) throw std::runtime_error("NPU region " + key + " is not in the library's metadata");
  const Region& region = found->second;
  if (static_cast<size_t>(args.size()) != 1 + region.num_inputs + region.num_outputs)
    throw std::runtime_error("NPU region " + key + " called with " + std::to_string(args.size() - 1) + " tensors");
  if (!loaded.runner) throw std::runtime_error("NPU region " + key + " called with no NPU runner");
  std::vector<Tensor> inputs, outputs;
  for (size_t i = 0; i < region.num_inputs; ++i) inputs.push_back(args[1 + i].cast<Tensor>());
  for (size_t i = 0; i < region.num_outputs; ++i) outputs.push_back(args[1 + region.num_inputs + i].cast<Tensor>());
  loaded.runner->Run(region, inputs, outputs);
}

// Register `edgecc.npu_region` (before the library's VM starts: it looks its functions up then).
inline void RegisterRegionFunction() {
  ffi::Function::SetGlobal("edgecc.npu_region", ffi::Function::FromPacked(CallRegion), true);
}

}  // namespace edgecc_npu
