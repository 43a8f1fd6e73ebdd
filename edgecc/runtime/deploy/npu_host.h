// Under emulation the host process runs the NPU regions (edgecc.runtime.emulated starts the runner
// under qemu-user with `--npu-host READ_FD,WRITE_FD`, two pipes it serves with LiteRT).
//
// Protocol, per region call:
//   runner -> host: "run KEY N_INPUTS N_OUTPUTS\n", then per input "NBYTES\n" and its bytes
//   host -> runner: "ok\n", then per output "NBYTES\n" and its bytes; or "error MESSAGE\n"
// Tensors travel as their raw bytes in the region model's layout (NHWC for 4-D); the host knows
// their shapes and dtypes from the region's model.
#pragma once

#include <cstdio>
#include <cstring>
#include <string>

#include "npu_regions.h"

namespace edgecc_npu {

class HostRegionRunner : public RegionRunner {
 public:
  HostRegionRunner(int read_fd, int write_fd) : from_host_(fdopen(read_fd, "rb")), to_host_(fdopen(write_fd, "wb")) {
    if (from_host_ == nullptr || to_host_ == nullptr) throw std::runtime_error("--npu-host: cannot open the pipes");
  }
  ~HostRegionRunner() override {
    std::fclose(to_host_);
    std::fclose(from_host_);
  }

  void Run(const Region& region, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs) override {
    std::fprintf(to_host_, "run %s %zu %zu\n", region.key.c_str(), inputs.size(), outputs.size());
    for (const Tensor& t : inputs) {
      std::fprintf(to_host_, "%zu\n", NumBytes(t));
      std::fwrite(Data(t), 1, NumBytes(t), to_host_);
    }
    if (std::fflush(to_host_) != 0) throw std::runtime_error("NPU region " + region.key + ": the host is gone");
    std::string status = ReadLine();
    if (status.rfind("error ", 0) == 0) throw std::runtime_error("NPU region " + region.key + ": " + status.substr(6));
    if (status != "ok") throw std::runtime_error("NPU region " + region.key + ": the host answered '" + status + "'");
    for (const Tensor& t : outputs) {
      size_t nbytes = std::stoull(ReadLine());
      if (nbytes != NumBytes(t))
        throw std::runtime_error("NPU region " + region.key + ": an output of " + std::to_string(nbytes) +
                                 " bytes for a tensor of " + std::to_string(NumBytes(t)));
      if (std::fread(Data(t), 1, nbytes, from_host_) != nbytes)
        throw std::runtime_error("NPU region " + region.key + ": the host's answer is truncated");
    }
  }

 private:
  std::string ReadLine() {
    std::string line;
    for (int c = std::fgetc(from_host_); c != '\n'; c = std::fgetc(from_host_)) {
      if (c == EOF) throw std::runtime_error("the host closed the NPU region pipe");
      line.push_back(static_cast<char>(c));
    }
    return line;
  }

  FILE* from_host_;
  FILE* to_host_;
};

}  // namespace edgecc_npu
