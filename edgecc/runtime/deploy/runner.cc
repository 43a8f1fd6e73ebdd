// edgecc-runner: run a library built by `edgecc compile` on a board, with TVM's C++ runtime only.
//
//   edgecc-runner MODEL.so --info
//       print the model's metadata (input and output names, shapes, dtypes) as JSON
//   edgecc-runner MODEL.so [--input NAME=FILE.npy]... [--output-dir DIR] [--repeat N] [--warmup N]
//                [--threads N] [--npu-host READ_FD,WRITE_FD]
//       read inputs from .npy files (an input not given is zeros, unless it has symbolic
//       dimensions: then its file gives its shape, within the bounds of the metadata's "dims"),
//       run once, write each output to DIR/output<i>.npy (in the metadata's output order); with
//       --repeat, also time N runs after N warm-up runs and print the per-run latencies and their
//       median
//
// Threads: --threads N runs the kernels on N threads; the default is every core the process may
// run on (its CPU affinity). TVM's own default would be half the cores on x86-64, where it
// assumes hyper-threading. The pool is created for max(N, TVM_NUM_THREADS) threads.
// Devices: a library with CUDA kernels runs them on GPU 0. The GPU's TVM runtime library
// (libtvm_runtime_cuda.so, which needs the NVIDIA driver and libcudart.so.13) is loaded from the
// runner's folder when it is there; inputs are copied to the GPU once, outputs back to the host,
// and each timed run ends when the GPU has finished.
// NPU regions: a library built for an NPU target (imx93-npu) calls `edgecc.npu_region` per region;
// the runner serves it with TensorFlow Lite and the NPU's delegate on the board (npu_tflite.h), or,
// with --npu-host, through two pipes to the process that started it (npu_host.h: edgecc's
// emulation, which runs the runner under qemu-user and the regions on LiteRT).
// Exit codes: 0 success, 2 bad arguments or inputs, 1 any other failure.

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/dtype.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "npu_host.h"
#include "npu_regions.h"
#include "npu_tflite.h"

namespace ffi = tvm::ffi;
using ffi::Tensor;

namespace {

// 64-byte aligned host memory for input tensors (what TVM's kernels assume)
struct AlignedCpuAlloc {
  void AllocData(DLTensor* t) {
    void* ptr = nullptr;
    if (posix_memalign(&ptr, 64, std::max<size_t>(ffi::GetDataSize(*t), 1)) != 0) throw std::bad_alloc();
    t->data = ptr;
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

size_t NumBytes(const Tensor& t) { return ffi::GetDataSize(t); }
const char* Bytes(const Tensor& t) { return static_cast<const char*>(t.data_ptr()) + t.byte_offset(); }

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ----- .npy files (format versions 1-3, C order, little-endian) ----------------------------------
struct NpyArray {
  std::string descr;  // e.g. "<f4"
  std::vector<int64_t> shape;
  std::vector<char> data;
};

// numpy's dtype code for a TVM dtype
std::string NpyDescr(DLDataType t) {
  if (t.code == kDLBool || (t.code == kDLUInt && t.bits == 1)) return "|b1";
  char kind = t.code == kDLFloat ? 'f' : t.code == kDLInt ? 'i' : t.code == kDLUInt ? 'u' : '?';
  if (kind == '?') throw std::runtime_error("dtype " + std::string(ffi::DLDataTypeToString(t)) + " has no .npy form");
  int bytes = t.bits / 8;
  return std::string(bytes == 1 ? "|" : "<") + kind + std::to_string(bytes);
}

std::string HeaderField(const std::string& header, const std::string& key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) throw UsageError("npy header without '" + key + "'");
  at = header.find(':', at) + 1;
  while (header[at] == ' ') ++at;
  size_t end = header[at] == '(' ? header.find(')', at) + 1
               : header[at] == '\'' ? header.find('\'', at + 1) + 1
                                    : header.find_first_of(",}", at);
  return header.substr(at, end - at);
}

NpyArray ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot open");
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw UsageError(path + ": not an .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  in.read(&header[0], header_len);
  NpyArray arr;
  std::string descr = HeaderField(header, "descr");
  arr.descr = descr.substr(1, descr.size() - 2);
  if (HeaderField(header, "fortran_order") != "False") throw UsageError(path + ": Fortran-ordered arrays are not supported");
  std::string dims = HeaderField(header, "shape");
  std::stringstream ss(dims.substr(1, dims.size() - 2));
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.find_first_not_of(' ') != std::string::npos) arr.shape.push_back(std::stoll(item));
  }
  std::streampos start = in.tellg();
  in.seekg(0, std::ios::end);
  arr.data.resize(static_cast<size_t>(in.tellg() - start));
  in.seekg(start);
  in.read(arr.data.data(), arr.data.size());
  return arr;
}

void WriteNpy(const std::string& path, const Tensor& t) {
  std::ostringstream header;
  header << "{'descr': '" << NpyDescr(t.dtype()) << "', 'fortran_order': False, 'shape': (";
  for (int64_t d : t.shape()) header << d << ", ";
  header << "), }";
  std::string text = header.str();
  text.append(63 - (10 + text.size()) % 64, ' ');  // pad so the data starts 64-byte aligned
  text.push_back('\n');
  if (!t.IsContiguous()) throw std::runtime_error(path + ": output is not contiguous");
  std::ofstream out(path, std::ios::binary);
  uint16_t len = static_cast<uint16_t>(text.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>(len >> 8));
  out << text;
  out.write(Bytes(t), static_cast<std::streamsize>(NumBytes(t)));
  if (!out) throw std::runtime_error(path + ": cannot write");
}

// ----- the model's metadata --------------------------------------------------------------------
// A library compiled with symbolic dimensions has text in its shapes ("batch", "seq*2") and a
// "dims" entry {variable: [lowest, highest or null]}; such inputs take their shape from their file.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // -1 for a symbolic dimension
  std::vector<std::string> dim_text;  // each dimension as the metadata writes it
  DLDataType dtype;

  bool Symbolic() const { return std::find(shape.begin(), shape.end(), -1) != shape.end(); }
  std::string ShapeText() const {
    std::string text = "(";
    for (size_t i = 0; i < dim_text.size(); ++i) text += (i ? ", " : "") + dim_text[i];
    return text + ")";
  }
};

std::vector<TensorSpec> Specs(const ffi::json::Object& meta, const char* key) {
  std::vector<TensorSpec> specs;
  for (const ffi::Any& item : meta.at(ffi::String(key)).cast<ffi::json::Array>()) {
    auto entry = item.cast<ffi::json::Object>();
    TensorSpec spec;
    spec.name = entry.at(ffi::String("name")).cast<ffi::String>();
    for (const ffi::Any& d : entry.at(ffi::String("shape")).cast<ffi::json::Array>()) {
      std::optional<int64_t> size = d.as<int64_t>();
      spec.shape.push_back(size ? *size : -1);
      spec.dim_text.push_back(size ? std::to_string(*size) : std::string(d.cast<ffi::String>()));
    }
    spec.dtype = ffi::StringToDLDataType(entry.at(ffi::String("dtype")).cast<ffi::String>());
    specs.push_back(spec);
  }
  return specs;
}

// Size variable -> [lowest, highest] (-1: no highest) of the "dims" entry, empty when shapes are fixed
std::map<std::string, std::pair<int64_t, int64_t>> DimBounds(const ffi::json::Object& meta) {
  std::map<std::string, std::pair<int64_t, int64_t>> bounds;
  auto dims = meta.find(ffi::String("dims"));
  if (dims == meta.end() || (*dims).second == nullptr) return bounds;
  for (const auto& kv : (*dims).second.cast<ffi::json::Object>()) {
    auto range = kv.second.cast<ffi::json::Array>();
    std::optional<int64_t> hi = range[1].as<int64_t>();
    bounds[std::string(kv.first.cast<ffi::String>())] = {range[0].cast<int64_t>(), hi ? *hi : -1};
  }
  return bounds;
}

// ----- threads ---------------------------------------------------------------------------------
std::vector<int> AvailableCores() {
  std::vector<int> cores;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cores.push_back(c);
  }
  if (cores.empty()) cores.push_back(0);
  return cores;
}

// Size TVM's thread pool before its first use, then run the kernels on `threads` threads
// (0: every available core), each free to run on any available core.
void UseThreads(int threads) {
  std::vector<int> cores = AvailableCores();
  if (threads <= 0) threads = static_cast<int>(cores.size());
  const char* env = std::getenv("TVM_NUM_THREADS");
  if (env == nullptr || std::atoi(env) < threads) setenv("TVM_NUM_THREADS", std::to_string(threads).c_str(), 1);
  // TVM creates the pool with one worker per listed core: list them round-robin up to `threads`
  ffi::Array<ffi::String> cpus;
  for (size_t i = 0; i < std::max(cores.size(), static_cast<size_t>(threads)); ++i)
    cpus.push_back(std::to_string(cores[i % cores.size()]));
  const int kShareAllCores = -3;
  auto configure = ffi::Function::GetGlobal("runtime.config_threadpool");
  if (!configure) throw std::runtime_error("the TVM runtime has no runtime.config_threadpool");
  (*configure)(kShareAllCores, threads, cpus);
}

// The number of threads the calling thread's pool runs kernels on.
int PoolThreads() {
  auto num_threads = ffi::Function::GetGlobal("runtime.NumThreads");
  return num_threads ? (*num_threads)().cast<int>() : 1;
}

// ----- device runtimes ---------------------------------------------------------------------------
// TVM runtime libraries for devices other than the CPU, loaded from the runner's folder when present
const char* const kDeviceRuntimes[] = {"libtvm_runtime_cuda.so"};

std::string RunnerFolder() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string exe(buf, static_cast<size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

void LoadDeviceRuntimes() {
  std::string folder = RunnerFolder();
  for (const char* name : kDeviceRuntimes) {
    std::string path = folder + "/" + name;
    if (!std::ifstream(path).good()) continue;
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr)
      throw std::runtime_error(std::string("cannot load ") + name + ": " + dlerror());
  }
}

ffi::Function GlobalFunction(const char* name) {
  auto f = ffi::Function::GetGlobal(name);
  if (!f) throw std::runtime_error(std::string("the TVM runtime has no ") + name);
  return *f;
}

// ----- the Relax virtual machine ---------------------------------------------------------------
struct Model {
  ffi::Module library;
  DLDevice device;  // where the kernels run: the CPU, or GPU 0 for a library with CUDA kernels
  ffi::Module vm;
  ffi::Function main;
  std::string metadata_json;
  std::vector<TensorSpec> inputs, outputs;
  std::map<std::string, std::pair<int64_t, int64_t>> dim_bounds;  // of symbolic input dimensions
  std::map<std::string, edgecc_npu::Region> npu_regions;

  explicit Model(const std::string& path)
      : library(LoadLibrary(path)), device(DeviceOf(library)), vm(Executable(library, path)) {
    const int kPooledAllocator = 2;
    if (device.device_type == kDLCPU) {
      Get("vm_initialization")(static_cast<int>(kDLCPU), 0, kPooledAllocator);
    } else {  // the device, then the host for shape computations
      Get("vm_initialization")(static_cast<int>(device.device_type), device.device_id, kPooledAllocator,
                               static_cast<int>(kDLCPU), 0, kPooledAllocator);
    }
    main = Get("main");
    metadata_json = Get("edgecc_metadata")().cast<ffi::String>();
    auto meta = ffi::json::Parse(metadata_json).cast<ffi::json::Object>();
    inputs = Specs(meta, "inputs");
    outputs = Specs(meta, "outputs");
    dim_bounds = DimBounds(meta);
    npu_regions = edgecc_npu::ReadRegions(meta);
  }

  static ffi::Module LoadLibrary(const std::string& path) {
    // dlopen searches the library path for bare names: a file in this folder needs "./"
    return ffi::Module::LoadFromFile(path.find('/') == std::string::npos ? "./" + path : path);
  }

  // GPU 0 when the library (or a module it imports, at any depth) holds CUDA or OpenCL kernels, else
  // the CPU (an OpenCL library needs a TVM runtime built with OpenCL, see docs/targets/gpu.md)
  static DLDevice DeviceOf(const ffi::Module& lib) {
    if (std::string(lib->kind()) == "cuda") return DLDevice{kDLCUDA, 0};
    if (std::string(lib->kind()) == "opencl") return DLDevice{kDLOpenCL, 0};
    for (const ffi::Any& item : lib->imports()) {
      DLDevice dev = DeviceOf(item.cast<ffi::Module>());
      if (dev.device_type != kDLCPU) return dev;
    }
    return DLDevice{kDLCPU, 0};
  }

  static ffi::Module Executable(const ffi::Module& lib, const std::string& path) {
    ffi::Optional<ffi::Function> load = lib->GetFunction("vm_load_executable");
    if (!load) throw UsageError(path + ": not a Relax VM library");
    return (*load)().cast<ffi::Module>();
  }

  ffi::Function Get(const char* name) {
    ffi::Optional<ffi::Function> f = vm->GetFunction(name);
    if (!f) throw UsageError(std::string("the library has no function '") + name + "' (not built by edgecc)");
    return *f;
  }

  // An uninitialised tensor of `like`'s shape and dtype on `dev`
  static Tensor Empty(const Tensor& like, DLDevice dev) {
    ffi::Shape shape(like.shape().begin(), like.shape().end());
    if (dev.device_type == kDLCPU) return Tensor::FromNDAlloc(AlignedCpuAlloc(), shape, like.dtype(), dev);
    return GlobalFunction("runtime.TVMTensorAllocWithScope")(shape, like.dtype(), dev, nullptr).cast<Tensor>();
  }

  static Tensor CopyTo(const Tensor& t, DLDevice dev) {
    Tensor copy = Empty(t, dev);
    GlobalFunction("runtime.TVMTensorCopyFromTo")(t, copy);
    return copy;
  }

  std::vector<Tensor> ToDevice(const std::vector<Tensor>& host) const {
    if (device.device_type == kDLCPU) return host;
    std::vector<Tensor> out;
    for (const Tensor& t : host) out.push_back(CopyTo(t, device));
    return out;
  }

  Tensor ToHost(const Tensor& t) const { return t.device().device_type == kDLCPU ? t : CopyTo(t, DLDevice{kDLCPU, 0}); }

  // Wait until the device has finished the work queued so far
  void Sync() const {
    if (device.device_type == kDLCPU) return;
    GlobalFunction("runtime.Device_StreamSync")(device, static_cast<void*>(nullptr));
  }

  std::vector<Tensor> Run(const std::vector<Tensor>& args) {
    std::vector<ffi::AnyView> views(args.begin(), args.end());
    ffi::Any result;
    main.CallPacked(views.data(), static_cast<int32_t>(views.size()), &result);
    if (auto one = result.as<Tensor>()) return {*one};
    std::vector<Tensor> out;
    for (const ffi::Any& item : result.cast<ffi::Array<ffi::Any>>()) out.push_back(item.cast<Tensor>());
    return out;
  }
};

// Whether an array's shape fits a spec's (symbolic dimensions take any size)
bool ShapeFits(const std::vector<int64_t>& shape, const TensorSpec& spec) {
  if (shape.size() != spec.shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i)
    if (spec.shape[i] != -1 && spec.shape[i] != shape[i]) return false;
  return true;
}

// Each size variable named by a symbolic dimension takes one value, within its bounds
void CheckDims(const std::vector<TensorSpec>& specs, const std::vector<Tensor>& args,
               const std::map<std::string, std::pair<int64_t, int64_t>>& bounds) {
  std::map<std::string, std::pair<int64_t, std::string>> seen;  // variable -> (size, where it was read)
  for (size_t k = 0; k < specs.size(); ++k) {
    for (size_t axis = 0; axis < specs[k].shape.size(); ++axis) {
      auto found = bounds.find(specs[k].dim_text[axis]);
      if (specs[k].shape[axis] != -1 || found == bounds.end()) continue;  // fixed, or computed from variables
      const std::string& var = found->first;
      int64_t size = args[k].shape()[axis], lo = found->second.first, hi = found->second.second;
      std::string where = "input '" + specs[k].name + "' dimension " + std::to_string(axis) + " (" + var + ")";
      if (size < lo || (hi != -1 && size > hi))
        throw UsageError(where + " is " + std::to_string(size) + ", the library allows " + std::to_string(lo) +
                         (hi != -1 ? ".." + std::to_string(hi) : " or more"));
      auto first = seen.emplace(var, std::make_pair(size, where)).first;
      if (first->second.first != size)
        throw UsageError(where + " is " + std::to_string(size) + ", but " + first->second.second + " makes " + var +
                         " = " + std::to_string(first->second.first));
    }
  }
}

Tensor MakeInput(const TensorSpec& spec, const std::string* path) {
  if (path == nullptr) {
    if (spec.Symbolic())
      throw UsageError("input '" + spec.name + "' has symbolic dimensions " + spec.ShapeText() + ": give it with --input");
    ffi::Shape shape(spec.shape.begin(), spec.shape.end());
    Tensor t = Tensor::FromNDAlloc(AlignedCpuAlloc(), shape, spec.dtype, DLDevice{kDLCPU, 0});
    std::memset(t.data_ptr(), 0, NumBytes(t));
    return t;
  }
  NpyArray arr = ReadNpy(*path);
  if (!ShapeFits(arr.shape, spec))
    throw UsageError(*path + ": shape does not match input '" + spec.name + "' " + spec.ShapeText());
  ffi::Shape shape(arr.shape.begin(), arr.shape.end());
  Tensor t = Tensor::FromNDAlloc(AlignedCpuAlloc(), shape, spec.dtype, DLDevice{kDLCPU, 0});
  size_t nbytes = NumBytes(t);
  char* dst = static_cast<char*>(t.data_ptr());
  if (arr.descr != NpyDescr(spec.dtype) && !(arr.descr == "=" + NpyDescr(spec.dtype).substr(1)))
    throw UsageError(*path + ": dtype " + arr.descr + " does not match input '" + spec.name + "' (" +
                     NpyDescr(spec.dtype) + ")");
  if (arr.data.size() < nbytes) throw UsageError(*path + ": truncated");
  std::memcpy(dst, arr.data.data(), nbytes);
  return t;
}

// ----- command line ----------------------------------------------------------------------------
struct Options {
  std::string library, output_dir;
  std::map<std::string, std::string> input_files;
  std::vector<std::string> positional_inputs;
  std::string npu_host;  // "READ_FD,WRITE_FD": NPU regions run by the process that started the runner
  bool info = false;
  int repeat = 0, warmup = 3, threads = 0;
};

Options ParseArgs(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--info") {
      opt.info = true;
    } else if (arg == "--input" || arg == "-i") {
      std::string v = value();
      size_t eq = v.find('=');
      // NAME=FILE.npy, or a bare file (which may itself contain '=') for the next input in order
      if (eq == std::string::npos || std::ifstream(v).good()) opt.positional_inputs.push_back(v);
      else opt.input_files[v.substr(0, eq)] = v.substr(eq + 1);
    } else if (arg == "--output-dir" || arg == "-o") {
      opt.output_dir = value();
    } else if (arg == "--repeat") {
      opt.repeat = std::stoi(value());
    } else if (arg == "--warmup") {
      opt.warmup = std::stoi(value());
    } else if (arg == "--threads") {
      opt.threads = std::stoi(value());
      if (opt.threads < 1) throw UsageError("--threads needs a number of at least 1");
    } else if (arg == "--npu-host") {
      opt.npu_host = value();
    } else if (arg == "-h" || arg == "--help") {
      throw UsageError("usage: edgecc-runner MODEL.so [--info] [--input NAME=FILE.npy]... [--output-dir DIR] "
                       "[--repeat N] [--warmup N] [--threads N] [--npu-host READ_FD,WRITE_FD]");
    } else if (opt.library.empty() && arg[0] != '-') {
      opt.library = arg;
    } else {
      throw UsageError("unknown argument " + arg);
    }
  }
  if (opt.library.empty()) throw UsageError("no library given (edgecc-runner MODEL.so ...)");
  return opt;
}

std::vector<Tensor> ReadInputs(const Model& model, const Options& opt) {
  for (const auto& kv : opt.input_files) {  // an unknown name first: it explains any missing input
    bool known = std::any_of(model.inputs.begin(), model.inputs.end(), [&](const TensorSpec& s) { return s.name == kv.first; });
    if (!known) throw UsageError("the model has no input '" + kv.first + "'");
  }
  std::vector<Tensor> args;
  for (size_t k = 0; k < model.inputs.size(); ++k) {
    const TensorSpec& spec = model.inputs[k];
    auto named = opt.input_files.find(spec.name);
    const std::string* path = named != opt.input_files.end() ? &named->second
                              : k < opt.positional_inputs.size() ? &opt.positional_inputs[k]
                                                                 : nullptr;
    if (path == nullptr && !spec.Symbolic())
      std::cerr << "edgecc-runner: input '" << spec.name << "' not given, using zeros\n";
    args.push_back(MakeInput(spec, path));
  }
  CheckDims(model.inputs, args, model.dim_bounds);
  return args;
}

void Time(Model& model, const std::vector<Tensor>& args, int warmup, int repeat) {
  for (int i = 0; i < warmup; ++i) model.Run(args);
  model.Sync();
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    auto start = std::chrono::steady_clock::now();
    model.Run(args);
    model.Sync();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    std::printf("run %d: %.3f ms\n", i, ms.back());
  }
  std::sort(ms.begin(), ms.end());
  double median = ms.size() % 2 ? ms[ms.size() / 2] : (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]) / 2;
  std::printf("median %.3f ms, min %.3f ms, max %.3f ms over %d runs on %d threads\n", median, ms.front(),
              ms.back(), repeat, PoolThreads());
}

// What runs the library's NPU regions: the host through --npu-host's pipes, else TensorFlow Lite
// with the NPU's delegate
std::unique_ptr<edgecc_npu::RegionRunner> NpuRunner(const std::string& npu_host) {
  if (npu_host.empty()) return std::make_unique<edgecc_npu::DelegateRegionRunner>();
  size_t comma = npu_host.find(',');
  if (comma == std::string::npos) throw UsageError("--npu-host needs READ_FD,WRITE_FD");
  return std::make_unique<edgecc_npu::HostRegionRunner>(std::stoi(npu_host.substr(0, comma)),
                                                        std::stoi(npu_host.substr(comma + 1)));
}

int Main(int argc, char** argv) {
  Options opt = ParseArgs(argc, argv);
  UseThreads(opt.threads);
  LoadDeviceRuntimes();
  edgecc_npu::RegisterRegionFunction();  // before the library's VM looks its functions up
  Model model(opt.library);
  if (opt.info) {
    std::printf("%s\n", model.metadata_json.c_str());
    return 0;
  }
  edgecc_npu::Regions& regions = edgecc_npu::LoadedRegions();
  regions.table = model.npu_regions;
  if (!regions.table.empty()) regions.runner = NpuRunner(opt.npu_host);
  std::vector<Tensor> args = model.ToDevice(ReadInputs(model, opt));
  std::vector<Tensor> results = model.Run(args);
  for (size_t k = 0; k < results.size(); ++k) {
    std::string name = k < model.outputs.size() ? model.outputs[k].name : "?";
    if (!opt.output_dir.empty()) {
      std::string path = opt.output_dir + "/output" + std::to_string(k) + ".npy";
      WriteNpy(path, model.ToHost(results[k]));
      std::printf("output %zu '%s' -> %s\n", k, name.c_str(), path.c_str());
    } else {
      std::printf("output %zu '%s': %s[", k, name.c_str(), std::string(ffi::DLDataTypeToString(results[k].dtype())).c_str());
      for (int64_t d : results[k].shape()) std::printf(" %lld", static_cast<long long>(d));
      std::printf(" ]\n");
    }
  }
  if (opt.repeat > 0) Time(model, args, opt.warmup, opt.repeat);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "edgecc-runner: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgecc-runner: error: %s\n", e.what());
    return 1;
  }
}
