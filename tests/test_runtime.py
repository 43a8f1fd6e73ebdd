"""edgecc.runtime: thread count of the kernels, per-kernel profile of a library, the kernel list in
its metadata, and the first-use set-up of the emulated AArch64 runner."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
from ort_compare import run_ort

import edgecc
from edgecc.runtime import load, load_any

DATA = os.path.join(os.path.dirname(__file__), "data")
MOBILENET = os.path.join(DATA, "mobilenetv2_tiny.onnx")


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    compiled = edgecc.compile(MOBILENET, "host")
    lib = tmp_path_factory.mktemp("lib") / "m.so"
    compiled.export(lib)
    return compiled, lib


THREADS_PROGRAM = """
import json, sys
import tvm
from edgecc.runtime import load
lib = sys.argv[1]
default = load(lib)
report = {"default": [default.threads, tvm.runtime.num_threads()]}
one = load(lib, threads=1)
report["one"] = [one.threads, tvm.runtime.num_threads()]
x = default.random_inputs(0)
default.run(x)  # the pool follows the module that runs
report["default again"] = [default.threads, tvm.runtime.num_threads()]
print(json.dumps(report))
"""


def test_kernels_run_on_every_available_core_unless_told(mobilenet):
    """Without TVM_NUM_THREADS, TVM alone would size its pool to half the cores on x86-64."""
    _, lib = mobilenet
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", THREADS_PROGRAM, str(lib)], capture_output=True, text=True,
                          env=env, check=True)
    report = json.loads(done.stdout)
    cores = len(os.sched_getaffinity(0))
    assert report == {"default": [cores, cores], "one": [1, 1], "default again": [cores, cores]}


def test_metadata_lists_the_kernels_and_profile_times_them(mobilenet):
    compiled, lib = mobilenet
    module = load(lib)
    assert module.metadata["kernels"] == compiled.stats.kernel_table
    assert sum(k["calls"] for k in module.metadata["kernels"]) == compiled.stats.calls
    x = module.random_inputs(1)
    np.testing.assert_allclose(module.run(x)["output"], run_ort(onnx.load(MOBILENET), x)[0], rtol=1e-4, atol=1e-4)

    records = module.profile(x, repeat=3)
    by_name = {r.name: r for r in records}
    kernels = {k["name"]: k for k in module.metadata["kernels"]}
    assert set(by_name) == set(kernels)  # a kernel that only reshapes is a view: in neither
    for record in records:
        meta = kernels[record.name]
        assert (record.kind, record.scheduled_by, record.calls) == (meta["kind"], meta["scheduled_by"], meta["calls"])
        assert record.ms > 0 and (record.gflops is not None) == (meta["flops"] > 0)
    assert any(r.calls == 2 and r.kind == "conv" for r in records)  # a conv the model calls twice: one record
    assert abs(sum(r.share for r in records) - 1) < 1e-9
    assert [r.ms for r in records] == sorted((r.ms for r in records), reverse=True)


def _wheels_from(runtime: str, folder) -> None:
    """Wheels holding the runtime files where the apache-tvm and apache-tvm-ffi wheels have them."""
    with zipfile.ZipFile(folder / "apache_tvm-0-py3-none-any.whl", "w") as zf:
        zf.write(os.path.join(runtime, "libtvm_runtime.so"), "tvm/lib/libtvm_runtime.so")
    with zipfile.ZipFile(folder / "apache_tvm_ffi-0-py3-none-any.whl", "w") as zf:
        zf.write(os.path.join(runtime, "libtvm_ffi.so"), "tvm_ffi/lib/libtvm_ffi.so")
        for root, _, files in os.walk(os.path.join(runtime, "include")):
            for name in files:
                path = os.path.join(root, name)
                zf.write(path, "tvm_ffi/include/" + os.path.relpath(path, os.path.join(runtime, "include")))


@pytest.mark.slow
def test_emulated_run_fetches_the_runtime_and_builds_the_runner_on_first_use(tmp_path, monkeypatch):
    """A fresh cache: the runtime is fetched (pip replaced by a copy of local wheels) and the runner
    built, each announced on `progress`; the runner then runs on the threads asked for."""
    from edgecc.runtime import deploy

    cached = deploy.build_runner("aarch64", download=True).parent
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheels_from(str(cached), wheels)
    monkeypatch.setenv("EDGECC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(deploy, "pip_download_command",
                        lambda arch, dest: ["sh", "-c", f"cp {wheels}/*.whl {dest}/"])
    lib = tmp_path / "m.so"
    edgecc.compile(os.path.join(DATA, "resnet_tiny.onnx"), "rpi4").export(lib)
    messages = []
    module = load_any(lib, threads=2, progress=messages.append)
    assert [m.split(" (")[0].split(" in ")[0] for m in messages] == [
        "downloading the aarch64 TVM runtime", "building the aarch64 deploy runner"]
    x = module.random_inputs(2)
    expected = run_ort(onnx.load(os.path.join(DATA, "resnet_tiny.onnx")), x)[0]
    np.testing.assert_allclose(module.run(x)["output"], expected, rtol=1e-4, atol=1e-4)

    runner = module.emulator
    for threads in (2, 3):
        runner.threads = threads
        timing = runner.run(str(lib), "--repeat", "1", "--warmup", "0", what=str(lib))
        assert timing.splitlines()[-1].endswith(f"on {threads} threads"), timing
    runner.threads = None
    default = runner.run(str(lib), "--repeat", "1", "--warmup", "0", what=str(lib))
    assert default.splitlines()[-1].endswith(f"on {len(os.sched_getaffinity(0))} threads"), default
    shutil.rmtree(tmp_path / "cache")


def test_metadata_is_read_from_the_file_whatever_the_order_of_its_keys(mobilenet, monkeypatch):
    from edgecc.runtime import library_file

    _, lib = mobilenet
    assert library_file.library_metadata(lib) == load(lib).metadata
    text = json.dumps({"outputs": [], "format": "edgecc-1", "npu": {"regions": []}}).encode()
    blob = b"{ not json" + len(text).to_bytes(8, "little") + text
    monkeypatch.setattr(library_file, "embedded_modules",
                        lambda path: [library_file.EmbeddedModule("relax.VMExecutable", blob)])
    assert library_file.library_metadata("x.so") == {"outputs": [], "format": "edgecc-1", "npu": {"regions": []}}


def test_a_file_that_is_not_an_edgecc_library_has_no_metadata(tmp_path):
    from edgecc.errors import InputError
    from edgecc.runtime.library_file import library_metadata

    (tmp_path / "notes.md").write_text("# not a library\n")
    with pytest.raises(InputError, match="notes.md: not a library built by edgecc"):
        library_metadata(tmp_path / "notes.md")
