// On the board: each NPU region's model (Vela's output, whose `ethos-u` custom operator holds the
// command stream) runs on TensorFlow Lite's C library with the NPU vendor's external delegate,
// which hands the custom operator to the NPU's kernel driver. On the NXP i.MX 93 that is NXP's
// Ethos-U delegate and the `ethosu` driver (/dev/ethosu0) of its BSP.
//
// Both libraries are opened at run time (the runner builds and runs without them for libraries
// without NPU regions):
//   EDGECC_TFLITE_LIB    TensorFlow Lite's C library (default libtensorflowlite_c.so)
//   EDGECC_NPU_DELEGATE  the external delegate (default /usr/lib/libethosu_delegate.so; "none":
//                        no delegate, TensorFlow Lite's CPU kernels)
//   EDGECC_NPU_MODEL     "npu" (default): the NPU compiler's model; "reference": the model before
//                        it, for a delegate that compiles TFLite operators itself (Mesa's Teflon
//                        on a mainline kernel) or for TensorFlow Lite's CPU kernels
// Written against TensorFlow Lite's C API and external delegate interface; not tried on hardware.
#pragma once

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include <tvm/ffi/extra/base64.h>

#include "npu_regions.h"

namespace edgecc_npu {

// TensorFlow Lite's C API (tensorflow/lite/core/c/c_api.h), the functions used here
struct TfLiteApi {
  void* (*ModelCreate)(const void*, size_t);
  void* (*OptionsCreate)();
  void (*OptionsAddDelegate)(void*, void*);
  void* (*InterpreterCreate)(const void*, const void*);
  int (*AllocateTensors)(void*);
  void* (*GetInputTensor)(const void*, int32_t);
  const void* (*GetOutputTensor)(const void*, int32_t);
  int (*Invoke)(void*);
  size_t (*TensorByteSize)(const void*);
  int (*CopyFromBuffer)(void*, const void*, size_t);
  int (*CopyToBuffer)(const void*, void*, size_t);
};

inline std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

inline void* OpenLibrary(const std::string& path, const char* what, const char* variable) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (handle == nullptr)
    throw std::runtime_error(std::string("the library has NPU regions, which need ") + what + " (" + path +
                             ": " + dlerror() + "; set " + variable + ")");
  return handle;
}

template <typename F>
void Bind(void* handle, const char* symbol, F* slot) {
  void* address = dlsym(handle, symbol);
  if (address == nullptr) throw std::runtime_error(std::string("TensorFlow Lite's C library lacks ") + symbol);
  *slot = reinterpret_cast<F>(address);
}

class DelegateRegionRunner : public RegionRunner {
 public:
  DelegateRegionRunner() {
    void* tflite = OpenLibrary(EnvOr("EDGECC_TFLITE_LIB", "libtensorflowlite_c.so"), "TensorFlow Lite's C library",
                               "EDGECC_TFLITE_LIB");
    Bind(tflite, "TfLiteModelCreate", &api_.ModelCreate);
    Bind(tflite, "TfLiteInterpreterOptionsCreate", &api_.OptionsCreate);
    Bind(tflite, "TfLiteInterpreterOptionsAddDelegate", &api_.OptionsAddDelegate);
    Bind(tflite, "TfLiteInterpreterCreate", &api_.InterpreterCreate);
    Bind(tflite, "TfLiteInterpreterAllocateTensors", &api_.AllocateTensors);
    Bind(tflite, "TfLiteInterpreterGetInputTensor", &api_.GetInputTensor);
    Bind(tflite, "TfLiteInterpreterGetOutputTensor", &api_.GetOutputTensor);
    Bind(tflite, "TfLiteInterpreterInvoke", &api_.Invoke);
    Bind(tflite, "TfLiteTensorByteSize", &api_.TensorByteSize);
    Bind(tflite, "TfLiteTensorCopyFromBuffer", &api_.CopyFromBuffer);
    Bind(tflite, "TfLiteTensorCopyToBuffer", &api_.CopyToBuffer);
    std::string model = EnvOr("EDGECC_NPU_MODEL", "npu");
    if (model != "npu" && model != "reference") throw std::runtime_error("EDGECC_NPU_MODEL must be npu or reference");
    use_reference_ = model == "reference";
    std::string delegate = EnvOr("EDGECC_NPU_DELEGATE", "/usr/lib/libethosu_delegate.so");
    if (delegate == "none") return;
    void* plugin = OpenLibrary(delegate, "the NPU's TensorFlow Lite delegate", "EDGECC_NPU_DELEGATE");
    using CreateDelegate = void* (*)(char**, char**, size_t, void (*)(const char*));
    CreateDelegate create = nullptr;
    Bind(plugin, "tflite_plugin_create_delegate", &create);
    delegate_ = create(nullptr, nullptr, 0, nullptr);
    if (delegate_ == nullptr) throw std::runtime_error("the NPU's TensorFlow Lite delegate failed to start");
  }

  void Run(const Region& region, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override {
    void* interpreter = Interpreter(region);
    for (size_t i = 0; i < inputs.size(); ++i) {
      void* t = api_.GetInputTensor(interpreter, static_cast<int32_t>(i));
      Check(t != nullptr && api_.CopyFromBuffer(t, Data(inputs[i]), NumBytes(inputs[i])) == 0, region, "an input");
    }
    Check(api_.Invoke(interpreter) == 0, region, "the run");
    for (size_t i = 0; i < outputs.size(); ++i) {
      const void* t = api_.GetOutputTensor(interpreter, static_cast<int32_t>(i));
      Check(t != nullptr && api_.CopyToBuffer(t, Data(outputs[i]), NumBytes(outputs[i])) == 0, region, "an output");
    }
  }

 private:
  struct Loaded {
    std::string model;  // TensorFlow Lite reads the model in place: it lives as long as the interpreter
    void* interpreter = nullptr;
  };

  static void Check(bool ok, const Region& region, const char* what) {
    if (!ok) throw std::runtime_error("NPU region " + region.key + ": " + what + " failed in TensorFlow Lite");
  }

  // The region's interpreter with the delegate, made at its first call
  void* Interpreter(const Region& region) {
    Loaded& loaded = loaded_[region.key];
    if (loaded.interpreter != nullptr) return loaded.interpreter;
    ffi::Bytes model = ffi::Base64Decode(ffi::String(use_reference_ ? region.reference_base64 : region.npu_model_base64));
    loaded.model.assign(model.data(), model.size());
    void* tflite_model = api_.ModelCreate(loaded.model.data(), loaded.model.size());
    Check(tflite_model != nullptr, region, "reading the model");
    void* options = api_.OptionsCreate();
    if (delegate_ != nullptr) api_.OptionsAddDelegate(options, delegate_);
    loaded.interpreter = api_.InterpreterCreate(tflite_model, options);
    Check(loaded.interpreter != nullptr && api_.AllocateTensors(loaded.interpreter) == 0, region, "loading the model");
    return loaded.interpreter;
  }

  TfLiteApi api_{};
  void* delegate_ = nullptr;  // none: TensorFlow Lite's own kernels
  bool use_reference_ = false;
  std::map<std::string, Loaded> loaded_;
};

}  // namespace edgecc_npu
