"""The deploy runner: a small C++ program that runs an edgecc library on a board.

`runner.cc` (beside this file) loads a library with TVM's C++ runtime, reads inputs from .npy
files, writes outputs to .npy files, and can time runs; the headers beside it serve the NPU regions
of a library built for an NPU target (`npu_regions.h`). This module cross-compiles it and
assembles a deploy folder (the runner, `libtvm_runtime.so`, `libtvm_ffi.so`) that a user copies to
the board beside `model.so`; the runner finds the libraries next to itself.

The TVM runtime for the board comes from the apache-tvm and apache-tvm-ffi wheels for its
platform on PyPI, at the versions installed here (the library format must match). They exist for
AArch64 (manylinux_2_28_aarch64) and x86-64; there are none for ARMv7 (armv7l). The runtime is kept
in a cache folder, `$EDGECC_CACHE/runtime/<arch>-<tvm version>/` (default `~/.cache/edgecc`), which
is also the deploy folder used to run libraries under qemu-user on this machine. For CUDA
(`device="cuda"`) the folder is `<arch>-cuda-<tvm version>/` and also holds the wheel's
`libtvm_runtime_cuda.so`, which the runner loads from its folder; on the board it needs the NVIDIA
driver (`libcuda.so.1`) and the CUDA 13 runtime (`libcudart.so.13`). A runtime built from source
for a platform without a wheel can be placed there by hand: `libtvm_runtime.so`,
`libtvm_ffi.so` and `include/` (tvm_ffi's headers, with dlpack).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgecc._files import atomic_output, cache_root
from edgecc.errors import ToolchainError

__all__ = [
    "DEVICE_LIBS",
    "RUNNER_NAME",
    "RUNTIME_LIBS",
    "WHEEL_PLATFORMS",
    "build_runner",
    "deploy_folder",
    "fetch_runtime",
    "pip_download_command",
    "runner_source",
    "runner_sources",
    "runtime_dir",
]

RUNNER_NAME = "edgecc-runner"
RUNTIME_LIBS = ("libtvm_runtime.so", "libtvm_ffi.so")
#: TVM runtime libraries a device needs beside RUNTIME_LIBS (from the apache-tvm wheel's tvm/lib)
DEVICE_LIBS = {"cpu": (), "cuda": ("libtvm_runtime_cuda.so",)}
#: pip platform tag of the TVM wheels per architecture (None: PyPI has no wheel for it)
WHEEL_PLATFORMS = {"aarch64": "manylinux_2_28_aarch64", "armv7": None, "x86_64": "manylinux_2_28_x86_64"}
_GNU_TRIPLES = {"aarch64": "aarch64-linux-gnu", "armv7": "arm-linux-gnueabihf", "x86_64": "x86_64-linux-gnu"}


def runner_source() -> Path:
    return Path(__file__).with_name("runner.cc")


def runner_sources() -> list[Path]:
    """runner.cc and the headers it includes (its NPU region support), beside this file."""
    return [runner_source(), *sorted(Path(__file__).parent.glob("*.h"))]


def _versions() -> tuple[str, str]:
    return metadata.version("apache-tvm"), metadata.version("apache-tvm-ffi")


def runtime_dir(arch: str, device: str = "cpu") -> Path:
    """The cache folder of `arch`'s TVM runtime for `device` (and of the runner built against it)."""
    return cache_root() / "runtime" / "-".join([arch] + ([device] if device != "cpu" else []) + [_versions()[0]])


def pip_download_command(arch: str, dest: str = "DIR") -> list[str]:
    tvm_version, ffi_version = _versions()
    return [sys.executable, "-m", "pip", "download", f"apache-tvm=={tvm_version}", f"apache-tvm-ffi=={ffi_version}",
            "--no-deps", "--only-binary=:all:", "--platform", WHEEL_PLATFORMS[arch] or f"<{arch} platform>",
            "-d", dest]


def _has_runtime(folder: Path, device: str = "cpu") -> bool:
    return (all((folder / lib).is_file() for lib in RUNTIME_LIBS + DEVICE_LIBS[device])
            and (folder / "include" / "tvm" / "ffi").is_dir())


def fetch_runtime(arch: str, download: bool = True, progress: Callable[[str], None] | None = None,
                  device: str = "cpu") -> Path:
    """The runtime folder of `arch` for `device`, downloading the wheels with pip when missing and allowed.

    `progress(message)` is told before a download starts.
    """
    folder = runtime_dir(arch, device)
    if _has_runtime(folder, device):
        return folder
    if WHEEL_PLATFORMS.get(arch) is None:
        raise ToolchainError(f"no TVM runtime for {arch}: PyPI has no apache-tvm wheel for it; build "
                             f"libtvm_runtime.so and libtvm_ffi.so for {arch} from source and put them, with "
                             f"tvm_ffi's include/ folder, in {folder}")
    if not download:
        raise ToolchainError(f"no {arch} TVM runtime in {folder} and downloading it was not allowed")
    if progress:
        progress(f"downloading the {arch} TVM runtime (apache-tvm {_versions()[0]} wheels for "
                 f"{WHEEL_PLATFORMS[arch]}) into {folder} ...")
    with tempfile.TemporaryDirectory(prefix="edgecc-wheels-") as tmp:
        cmd = pip_download_command(arch, tmp)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise ToolchainError(f"cannot download the {arch} TVM runtime ({last}); run: {' '.join(cmd[2:])}")
        _unpack_runtime(Path(tmp), folder, device)
    return folder


def _unpack_runtime(wheels: Path, folder: Path, device: str = "cpu") -> None:
    """Take the runtime libraries and tvm_ffi's headers out of the wheels, into `folder` atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    wanted = {"tvm/lib/libtvm_runtime.so", "tvm_ffi/lib/libtvm_ffi.so"}
    wanted |= {f"tvm/lib/{lib}" for lib in DEVICE_LIBS[device]}
    try:
        for wheel in wheels.glob("*.whl"):
            with zipfile.ZipFile(wheel) as zf:
                for name in zf.namelist():
                    if name in wanted:
                        (staging / Path(name).name).write_bytes(zf.read(name))
                    elif name.startswith("tvm_ffi/include/") and not name.endswith("/"):
                        dest = staging / "include" / name[len("tvm_ffi/include/"):]
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(zf.read(name))
        if not _has_runtime(staging, device):
            raise ToolchainError(f"the downloaded wheels in {wheels} lack the TVM runtime libraries")
        try:
            staging.chmod(0o755)
            staging.rename(folder)
        except OSError:  # another process got there first
            if not _has_runtime(folder, device):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cross_gxx(arch: str) -> str:
    """The (cross) C++ compiler for `arch`, or a ToolchainError naming its Debian package."""
    from edgecc.targets.arm import require_tool

    triple = _GNU_TRIPLES[arch]
    return require_tool(f"{triple}-g++", f"g++-{triple.replace('_', '-')}")


def build_runner(arch: str, download: bool = True, progress: Callable[[str], None] | None = None,
                 device: str = "cpu") -> Path:
    """The runner for `arch` (and `device`) in its runtime folder, compiled with the cross g++ when
    out of date.

    `progress(message)` is told before a download or a build starts.
    """
    folder = fetch_runtime(arch, download, progress, device)
    source = runner_source()
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in runner_sources())).hexdigest()[:16]
    runner, stamp = folder / RUNNER_NAME, folder / f".{RUNNER_NAME}.sha256"
    if runner.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return runner
    if progress:
        progress(f"building the {arch} {'' if device == 'cpu' else device + ' '}deploy runner in {folder} ...")
    compiler = cross_gxx(arch)
    with atomic_output(runner, mode=0o755) as tmp:
        cmd = [compiler, "-std=c++17", "-O2", "-o", tmp, str(source), f"-I{folder / 'include'}",
               f"-L{folder}", "-ltvm_runtime", "-ltvm_ffi", "-ldl", "-Wl,-rpath,$ORIGIN"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ToolchainError(f"building the {arch} runner failed: {_first_error(done.stderr)}")
    stamp.write_text(digest)
    return runner


def _first_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return next((ln for ln in lines if "error" in ln), lines[0] if lines else "no output")


def deploy_folder(arch: str, out: str | os.PathLike, model: str | None = None, download: bool = True,
                  progress: Callable[[str], None] | None = None, device: str = "cpu") -> Path:
    """Copy the runner and the runtime libraries (and `model`) into `out`, ready to copy to a board."""
    runner = build_runner(arch, download, progress, device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    libs = [runner.parent / lib for lib in RUNTIME_LIBS + DEVICE_LIBS[device]]
    for path in [runner] + libs + ([Path(model)] if model else []):
        shutil.copy2(path, out / path.name)
    return out
