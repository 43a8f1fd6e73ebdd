"""ARM CPUs (AArch64 and ARMv7-A hard-float with NEON), cross-compiled with the GNU toolchains.

`arm-cpu` takes a CPU model (`--cpu cortex-a72`); the CPU decides the architecture and its
features, which become LLVM attributes (`neon` -> `+neon`, `dotprod` -> `+dotprod`, `fp16` ->
`+fullfp16`). Presets name boards: `rpi4` is a Cortex-A72 with 4 cores. NEON registers are 16
bytes wide, so float32 convolutions are blocked by 4 or 8 channels (NCHW4c/NCHW8c) and the
default conv schedule may keep accumulators in 24 of AArch64's 32 vector registers (12 of
ARMv7's 16 quad registers). With `dotprod` int8 convolutions and dense layers take their
weights in groups of four input channels (`int8_dot_channels`) for sdot.

Libraries are linked by `aarch64-linux-gnu-gcc` or `arm-linux-gnueabihf-gcc`; a missing
toolchain is a ToolchainError naming the Debian package to install.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

from edgecc.errors import TargetError, ToolchainError

from .base import CpuTarget

__all__ = ["ARCHES", "BOARDS", "CPUS", "FEATURES", "ArmArch", "ArmCpu", "ArmCpuTarget", "Board", "arm_preset",
           "armv7_target"]


@dataclass(frozen=True)
class ArmArch:
    """An instruction set and the GNU toolchain that links for it."""

    name: str
    llvm_triple: str
    gnu_triple: str  # prefix of the cross tools: <gnu_triple>-gcc
    vector_registers: int  # 128-bit NEON registers
    qemu: str  # qemu-user binary that runs its programs
    base_attrs: tuple[str, ...] = ()
    float_abi: str | None = None  # LLVM's -mfloat-abi, where the triple alone does not fix it

    @property
    def gcc(self) -> str:
        return f"{self.gnu_triple}-gcc"

    @property
    def gxx(self) -> str:
        return f"{self.gnu_triple}-g++"

    def package(self, tool: str) -> str:
        """Debian package holding `tool` (gcc or g++) for this architecture."""
        return f"{tool}-{self.gnu_triple}"


ARCHES = {
    "aarch64": ArmArch("aarch64", "aarch64-linux-gnu", "aarch64-linux-gnu", 32, "qemu-aarch64"),
    # hard-float ABI; VFPv4 with 32 double registers comes with every NEON ARMv7-A core we name
    "armv7": ArmArch("armv7", "armv7a-linux-gnueabihf", "arm-linux-gnueabihf", 16, "qemu-arm", ("+vfp4",), "hard"),
}

#: feature name -> LLVM attribute, per architecture
FEATURES = {
    "aarch64": {"neon": "+neon", "dotprod": "+dotprod", "fp16": "+fullfp16", "i8mm": "+i8mm"},
    "armv7": {"neon": "+neon", "fp16": "+fp16"},  # fp16: half-precision conversions only
}


@dataclass(frozen=True)
class ArmCpu:
    """A CPU model: its LLVM name, architecture and SIMD features."""

    name: str
    arch: str
    features: tuple[str, ...]


_V8_0 = ("neon",)
_V8_2 = ("neon", "dotprod", "fp16")
CPUS = {cpu.name: cpu for cpu in [
    ArmCpu("generic", "aarch64", _V8_0),
    ArmCpu("cortex-a53", "aarch64", _V8_0),
    ArmCpu("cortex-a72", "aarch64", _V8_0),
    ArmCpu("cortex-a55", "aarch64", _V8_2),
    ArmCpu("cortex-a76", "aarch64", _V8_2),
    ArmCpu("cortex-a78", "aarch64", _V8_2),
    ArmCpu("cortex-a78ae", "aarch64", _V8_2),
    ArmCpu("neoverse-n1", "aarch64", _V8_2),
    ArmCpu("cortex-a7", "armv7", ("neon", "fp16")),
    ArmCpu("cortex-a9", "armv7", ("neon", "fp16")),
    ArmCpu("cortex-a15", "armv7", ("neon", "fp16")),
    ArmCpu("cortex-a17", "armv7", ("neon", "fp16")),
]}

#: default CPU per architecture when none is named
DEFAULT_CPU = {"aarch64": "generic", "armv7": "cortex-a7"}


@dataclass(frozen=True)
class Board:
    """A preset: a board's CPU (the cores code is tuned for) and how many of them run threads."""

    name: str
    cpu: str
    cores: int
    description: str


BOARDS = {b.name: b for b in [
    Board("rpi4", "cortex-a72", 4, "Raspberry Pi 4: 4x Cortex-A72, AArch64, NEON"),
    Board("rpi5", "cortex-a76", 4, "Raspberry Pi 5: 4x Cortex-A76, AArch64, NEON + dotprod + fp16"),
    Board("rk3588", "cortex-a76", 4,
          "Rockchip RK3588: 4x Cortex-A76 + 4x Cortex-A55 (threads on the A76 cores), AArch64, NEON + dotprod + fp16"),
    Board("jetson-orin", "cortex-a78ae", 8,
          "NVIDIA Jetson Orin CPU: Cortex-A78AE (Nano 6, NX 8, AGX 12 cores; planned for 8), AArch64, "
          "NEON + dotprod + fp16"),
    Board("imx93", "cortex-a55", 2, "NXP i.MX 93: 2x Cortex-A55, AArch64, NEON + dotprod + fp16"),
]}


@dataclass
class ArmCpuTarget(CpuTarget):
    """An ARM CPU reached through LLVM and a GNU cross toolchain.

    `arch` is `aarch64` or `armv7`; `cpu` an LLVM CPU name (see CPUS); `features` overrides the
    CPU's feature list (names from FEATURES); `threads` is the number of cores to run on.
    """

    cpu: str | None = None
    arch: str | None = None
    features: tuple[str, ...] | str | None = None
    threads: int | None = None
    preset: str | None = None
    _cpu: ArmCpu = field(init=False, repr=False)

    def __post_init__(self):
        self.family = "arm-cpu"
        self._cpu = _resolve_cpu(self.cpu, self.arch)
        self.arch = self._cpu.arch
        self.cpu = self._cpu.name
        self.features = _resolve_features(self.features, self._cpu)
        if self.threads is not None and int(self.threads) < 1:
            raise TargetError(f"arm-cpu: threads must be at least 1, got {self.threads}")
        self.description = f"{self.cpu} ({self.arch}, {', '.join(self.features) or 'no SIMD'})"

    # --- identity ------------------------------------------------------------------------------
    @property
    def isa(self) -> ArmArch:
        return ARCHES[self.arch]

    @property
    def tag(self) -> str:
        """Boards are tuned as boards (`rpi4`, `rk3588-cortex-a55` for its other cores); a bare
        CPU as `<arch>-<cpu>`."""
        if self.preset in BOARDS:
            board = BOARDS[self.preset]
            return board.name if board.cpu == self.cpu else f"{board.name}-{self.cpu}"
        return f"{self.arch}-{self.cpu}"

    def llvm_attrs(self) -> list[str]:
        table = FEATURES[self.arch]
        return list(self.isa.base_attrs) + [table[f] for f in self.features]

    def tvm_target_dict(self) -> dict[str, Any]:
        target = {"kind": "llvm", "mtriple": self.isa.llvm_triple, "mcpu": self.cpu,
                  "mattr": self.llvm_attrs(), "num-cores": self.num_cores}
        if self.isa.float_abi:
            target["mfloat-abi"] = self.isa.float_abi
        return target

    # --- policy for passes and schedules -------------------------------------------------------
    @property
    def vector_bytes(self) -> int:
        return 16 if "neon" in self.features else 4

    @property
    def vector_registers(self) -> int:
        """128-bit SIMD registers the default schedules may plan accumulator tiles for."""
        return self.isa.vector_registers

    @property
    def num_cores(self) -> int:
        if self.threads is not None:
            return int(self.threads)
        return BOARDS[self.preset].cores if self.preset in BOARDS else 4

    def has_feature(self, name: str) -> bool:
        """Whether the code may use feature `name`, in LLVM's spelling (`dotprod`, `neon`,
        `fullfp16`, `i8mm`): from the CPU's features or the explicit `features`, never the host's."""
        return f"+{name}" in self.llvm_attrs()

    @property
    def int8_dot_channels(self) -> int:
        """4 with the dot-product extension (sdot: four int8 products per int32 lane), else 1."""
        return 4 if self.has_feature("dotprod") else 1

    # --- building and running ------------------------------------------------------------------
    def check_toolchain(self) -> None:
        require_tool(self.isa.gcc, self.isa.package("gcc"))

    def fcompile(self):
        """TVM's link function for this target (for `export_library`, also in tuning builders)."""
        from tvm.support import cc

        return cc.cross_compiler(self.isa.gcc, options=[])

    def export_library(self, executable, path: str) -> None:
        self.check_toolchain()
        executable.export_library(path, fcompile=self.fcompile())

    @property
    def runs_here(self) -> bool:
        import platform

        return platform.machine() == self.arch

    def deploy_runner(self) -> tuple[str, str]:
        return self.arch, "cpu"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(arch=self.arch, cpu=self.cpu, features=list(self.features), preset=self.preset,
                    linker=self.isa.gcc)
        return info


def require_tool(tool: str, package: str) -> str:
    """The path of `tool` on PATH, or a ToolchainError naming the Debian package to install."""
    path = shutil.which(tool)
    if path is None:
        raise ToolchainError(f"{tool} not found on PATH; install the cross toolchain: "
                             f"apt-get install {package}")
    return path


def _resolve_cpu(cpu: str | None, arch: str | None) -> ArmCpu:
    if arch is not None and arch not in ARCHES:
        raise TargetError(f"arm-cpu: unknown arch '{arch}' (known: {', '.join(ARCHES)})")
    name = cpu or DEFAULT_CPU[arch or "aarch64"]
    known = CPUS.get(name)
    if known is None:
        raise TargetError(f"arm-cpu: unknown cpu '{name}' (known: {', '.join(sorted(CPUS))})")
    if arch is not None and known.arch != arch:
        if arch == "armv7" and known.arch == "aarch64" and name != "generic":
            # ARMv8-A cores also run 32-bit ARM code (a 32-bit OS on a Raspberry Pi 4)
            return ArmCpu(name, "armv7", ("neon", "fp16"))
        raise TargetError(f"arm-cpu: cpu '{name}' is not an {arch} CPU")
    return known


def _resolve_features(features, cpu: ArmCpu) -> tuple[str, ...]:
    if features is None:
        return cpu.features
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",") if f.strip()]
    table = FEATURES[cpu.arch]
    unknown = [f for f in features if f not in table]
    if unknown:
        raise TargetError(f"arm-cpu: unknown {cpu.arch} feature(s) {', '.join(unknown)} "
                          f"(known: {', '.join(table)})")
    return tuple(dict.fromkeys(features))


def arm_preset(board: str):
    """A factory for `get_target(board, cpu=..., threads=...)`."""
    spec = BOARDS[board]

    def make(cpu: str | None = None, threads: int | None = None, features=None) -> ArmCpuTarget:
        return ArmCpuTarget(cpu=cpu or spec.cpu, arch="aarch64", features=features, threads=threads, preset=board)

    make.__doc__ = spec.description
    return make


def armv7_target(cpu: str | None = None, threads: int | None = None, features=None) -> ArmCpuTarget:
    """`armv7`: ARMv7-A hard-float with NEON (default CPU cortex-a7)."""
    return ArmCpuTarget(cpu=cpu, arch="armv7", features=features, threads=threads)
