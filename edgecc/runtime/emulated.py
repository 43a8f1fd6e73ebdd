"""Run a library built for another CPU on this machine, under qemu-user with the deploy runner.

`EmulatedModule(path, "aarch64")` has the interface of `Module` (`run(dict) -> dict`, input and
output specs from the library's metadata) but runs each call as a process: the AArch64 deploy
runner under `qemu-aarch64 -L /usr/aarch64-linux-gnu`, inputs and outputs passed as .npy files in
a temporary folder. It checks what a cross build computes; it says nothing about speed, so
`benchmark` and `profile` refuse: emulated timings must never be taken for the board's.

A library with NPU regions (`--target imx93-npu`) runs its CPU part the same way; the runner,
started with `--npu-host`, sends each region call through a pipe to this process, which runs the
region on LiteRT (`edgecc.runtime.npu.serve_region_requests`) and sends the outputs back.

On first use the board's TVM runtime is downloaded (the apache-tvm wheels for its platform) and
the runner is cross-compiled against it, with a line on `progress` (default: stderr) for each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from edgecc.errors import EdgeccError, ToolchainError

from .specs import LibrarySpecs

__all__ = ["EMULATORS", "EmulatedModule", "Emulator"]

#: arch -> (qemu-user binary, sysroot of the cross toolchain's C library, Debian packages)
EMULATORS = {
    "aarch64": ("qemu-aarch64", "/usr/aarch64-linux-gnu", "qemu-user g++-aarch64-linux-gnu"),
    "arm": ("qemu-arm", "/usr/arm-linux-gnueabihf", "qemu-user g++-arm-linux-gnueabihf"),
}
_RUNTIME_ARCH = {"aarch64": "aarch64", "arm": "armv7"}  # ELF machine -> deploy runtime name


def _print_progress(message: str) -> None:
    print(f"edgecc: {message}", file=sys.stderr, flush=True)


class Emulator:
    """The deploy runner of one architecture under qemu-user."""

    def __init__(self, arch: str, threads: int | None = None, progress: Callable[[str], None] | None = None):
        if arch not in EMULATORS:
            raise ToolchainError(f"no emulator for {arch} libraries (emulated: {', '.join(EMULATORS)})")
        qemu, self.sysroot, packages = EMULATORS[arch]
        self.qemu = shutil.which(qemu) or shutil.which(f"{qemu}-static")
        if self.qemu is None:
            raise ToolchainError(f"{qemu} not found on PATH; install user-mode emulation: apt-get install qemu-user")
        if not os.path.isdir(os.path.join(self.sysroot, "lib")):
            raise ToolchainError(f"no {arch} C library in {self.sysroot}; apt-get install {packages}")
        from .deploy import build_runner

        self.runner = build_runner(_RUNTIME_ARCH[arch], download=True, progress=progress or _print_progress)
        self.threads = threads

    def command(self, *args: str) -> list[str]:
        threads = ["--threads", str(self.threads)] if self.threads else []
        return [self.qemu, "-L", self.sysroot, str(self.runner), *args, *threads]

    def run(self, *args: str, what: str, serve_npu: bool = False) -> str:
        """Run the runner with `args`; returns its stdout. With `serve_npu`, this process runs the
        NPU regions the library calls (they must be registered, `edgecc.runtime.npu`)."""
        env = dict(os.environ, LD_LIBRARY_PATH=str(self.runner.parent))
        if serve_npu:
            returncode, stdout, stderr = _run_serving_npu(self.command(*args), env)
        else:
            done = subprocess.run(self.command(*args), capture_output=True, text=True, env=env, check=False)
            returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
        if returncode != 0:
            detail = (stderr.strip().splitlines() or [f"exit status {returncode}"])[-1]
            raise EdgeccError(f"{what}: the emulated runner failed: {detail}")
        return stdout


def _run_serving_npu(command: list[str], env: dict) -> tuple[int, str, str]:
    """Run `command` (the runner under qemu) with `--npu-host` pipes, answering its NPU region
    calls until it exits; returns its exit status, stdout and stderr."""
    from .npu import serve_region_requests

    requests_read, requests_write = os.pipe()
    answers_read, answers_write = os.pipe()
    requests, answers = open(requests_read, "rb"), open(answers_write, "wb")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, requests, answers:
        try:  # files for stdout and stderr: no pipe can fill up while this process serves regions
            proc = subprocess.Popen([*command, "--npu-host", f"{answers_read},{requests_write}"], stdout=out,
                                    stderr=err, env=env, pass_fds=(answers_read, requests_write))
        finally:
            os.close(answers_read)  # the runner's ends: the requests end when the runner exits
            os.close(requests_write)
        try:
            serve_region_requests(requests, answers)
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.wait()
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace")


class EmulatedModule(LibrarySpecs):
    """A library for `arch`, run through the deploy runner under qemu-user."""

    emulated = True

    def __init__(self, path: str, arch: str, threads: int | None = None,
                 progress: Callable[[str], None] | None = None):
        self.path = os.fspath(path)
        self.arch = arch
        self.emulation_note = f"the {arch} library runs under qemu-user emulation here"
        self.emulator = Emulator(arch, threads, progress)
        self.metadata = json.loads(self.emulator.run(os.path.abspath(self.path), "--info", what=self.path))
        self.inputs = self.metadata["inputs"]
        self.outputs = self.metadata["outputs"]
        self.has_npu_regions = "npu" in self.metadata
        if self.has_npu_regions:  # LiteRT's interpreters now: a missing LiteRT is one line before any run
            from .npu import register_regions

            register_regions(self.metadata["npu"])
            self.emulation_note = (f"the {arch} CPU part runs under qemu-user emulation here, the NPU regions on "
                                   f"LiteRT's int8 reference kernels (no Ethos-U on this machine)")

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once under the emulator; returns output name -> numpy array."""
        arrays = self.check_inputs(inputs)
        with tempfile.TemporaryDirectory(prefix="edgecc-emulated-") as tmp:
            args = [os.path.abspath(self.path), "--output-dir", tmp]
            for k, data in enumerate(arrays):  # in the model's order: names may hold any character
                file = Path(tmp) / f"input{k}.npy"
                np.save(file, data)
                args += ["--input", str(file)]
            self.emulator.run(*args, what=self.path, serve_npu=self.has_npu_regions)
            return {spec["name"]: np.load(Path(tmp) / f"output{k}.npy") for k, spec in enumerate(self.outputs)}

    def benchmark(self, inputs, repeat: int = 20, warmup: int = 3):
        self.refuse_emulated_timing("benchmark")

    def profile(self, inputs, repeat: int = 10):
        self.refuse_emulated_timing("profile")
