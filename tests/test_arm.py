"""The ARM CPU target: presets and features, cross builds, and AArch64 libraries run under
qemu-user with the deploy runner, compared with ONNX Runtime on this machine.

The cross-build tests need the Debian cross toolchains (g++-aarch64-linux-gnu,
g++-arm-linux-gnueabihf) and qemu-user, which CI installs: without them they fail, naming the
package. The AArch64 TVM runtime is fetched from PyPI into the edgecc cache the first time
(`edgecc runner` does the same).
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from edgecc.passes.convert_layout import choose_block
from edgecc.targets import get_target, list_presets
from edgecc.targets.arm import BOARDS
from edgecc.targets.host import host_cpu_features
from ort_compare import run_ort

import edgecc
from edgecc.errors import TargetError, ToolchainError
from edgecc.lower.schedules.cpu import accumulator_registers, conv_tiling
from edgecc.runtime import library_arch, load_any

DATA = os.path.join(os.path.dirname(__file__), "data")
MODELS = ["resnet_tiny", "mobilenetv2_tiny", "transformer_tiny"]

HAVE_AARCH64_GCC = shutil.which("aarch64-linux-gnu-gcc") is not None
HAVE_AARCH64_GXX = shutil.which("aarch64-linux-gnu-g++") is not None
HAVE_ARMHF_GCC = shutil.which("arm-linux-gnueabihf-gcc") is not None
HAVE_QEMU_AARCH64 = shutil.which("qemu-aarch64") is not None or shutil.which("qemu-aarch64-static") is not None
QEMU_ARM = shutil.which("qemu-arm") or shutil.which("qemu-arm-static")
HAVE_QEMU_ARM = QEMU_ARM is not None



def edgecc_cli(*args, env=None):
    proc = subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True, check=False,
                          env=env)
    return proc.returncode, proc.stdout, proc.stderr


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("edgecc: error: "), err
    return lines[0]


# ----- targets, presets, features --------------------------------------------------------------
@pytest.mark.parametrize("board, cpu, attrs, cores", [
    ("rpi4", "cortex-a72", ["+neon"], 4),
    ("rpi5", "cortex-a76", ["+neon", "+dotprod", "+fullfp16"], 4),
    ("rk3588", "cortex-a76", ["+neon", "+dotprod", "+fullfp16"], 4),
    ("jetson-orin", "cortex-a78ae", ["+neon", "+dotprod", "+fullfp16"], 8),
    ("imx93", "cortex-a55", ["+neon", "+dotprod", "+fullfp16"], 2),
])
def test_board_presets_map_to_cpus_and_llvm_attributes(board, cpu, attrs, cores):
    target = get_target(board)
    assert target.tvm_target_dict() == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": cpu,
                                        "mattr": attrs, "num-cores": cores}
    assert target.tag == board and target.arch == "aarch64"
    tvm_target = target.tvm_target()  # TVM accepts it and sees an ARM CPU
    assert "arm_cpu" in tvm_target.keys
    assert bool(tvm_target.attrs["feature.has_dotprod"]) == ("+dotprod" in attrs)


def test_every_preset_is_listed_by_edgecc_targets():
    rc, out, err = edgecc_cli("targets")
    assert rc == 0, err
    listed = {line.split()[0] for line in out.splitlines() if line.strip() and not line.endswith(":")}
    assert set(list_presets()) <= listed and {"arm-cpu", "armv7", "host"} <= listed
    assert set(BOARDS) <= set(list_presets())  # every ARM board is a preset


def test_arm_cpu_takes_the_architecture_from_the_cpu():
    a72 = get_target("arm-cpu", cpu="cortex-a72")
    assert (a72.arch, a72.tag, a72.features) == ("aarch64", "aarch64-cortex-a72", ("neon",))
    a7 = get_target("arm-cpu", cpu="cortex-a7")
    assert a7.arch == "armv7"
    d = a7.tvm_target_dict()
    assert d["mtriple"] == "armv7a-linux-gnueabihf" and d["mfloat-abi"] == "hard"
    assert d["mattr"] == ["+vfp4", "+neon", "+fp16"]
    # a 32-bit OS on an ARMv8 core: AArch32 code tuned for it
    assert get_target("armv7", cpu="cortex-a72").tvm_target_dict()["mtriple"] == "armv7a-linux-gnueabihf"


def test_features_override_and_errors():
    t = get_target("arm-cpu", cpu="cortex-a76", features="neon,dotprod")
    assert t.tvm_target_dict()["mattr"] == ["+neon", "+dotprod"]
    assert get_target("rk3588", cpu="cortex-a55").tag == "rk3588-cortex-a55"
    with pytest.raises(TargetError, match="unknown cpu 'cortex-x9'"):
        get_target("arm-cpu", cpu="cortex-x9")
    with pytest.raises(TargetError, match="unknown armv7 feature"):
        get_target("armv7", features="neon,dotprod")
    with pytest.raises(TargetError, match="not an armv7 CPU"):
        get_target("armv7", cpu="generic")


def test_neon_vector_width_drives_layout_and_conv_register_tiles():
    aarch64, armv7, host = get_target("rpi4"), get_target("armv7"), get_target("host")
    assert aarch64.lanes("float32") == armv7.lanes("float32") == 4
    assert aarch64.lanes("float16") == 8
    assert aarch64.preferred_layout == "NCHWc"
    assert choose_block(32, 4) == 8 and choose_block(12, 4) == 4  # NCHW8c / NCHW4c
    assert accumulator_registers(aarch64) == 24 and accumulator_registers(armv7) == 12
    assert accumulator_registers(get_target("host", cpu="znver3")) == 12  # AVX2: 16 vector registers
    assert accumulator_registers(host) == (24 if "avx512f" in host_cpu_features() else 12)  # AVX-512: 32
    for target, registers in ((aarch64, 32), (armv7, 16)):
        budget = accumulator_registers(target)
        for width in (1, 3, 7, 14, 28, 32, 56, 112):
            for block in (4, 8):
                tile, vectors = conv_tiling(width, block, 4, budget)
                # accumulators + one weight vector per channel vector + the broadcast input
                assert tile * vectors + vectors + 1 <= registers, (width, block, tile, vectors)


def test_missing_cross_compiler_is_one_error_naming_the_package(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # nothing on PATH: no cross toolchain
    rc, _, err = edgecc_cli("compile", os.path.join(DATA, "resnet_tiny.onnx"), "--target", "rpi4",
                            "-o", tmp_path / "m.so", env=env)
    assert rc == 2
    assert "apt-get install gcc-aarch64-linux-gnu" in one_error_line(err)
    rc, _, err = edgecc_cli("compile", os.path.join(DATA, "resnet_tiny.onnx"), "--target", "armv7",
                            "-o", tmp_path / "m.so", env=env)
    assert rc == 2 and "apt-get install gcc-arm-linux-gnueabihf" in one_error_line(err)
    assert not (tmp_path / "m.so").exists()


def test_missing_cross_gxx_for_the_runner_names_the_package(monkeypatch, tmp_path):
    from edgecc.runtime.deploy import cross_gxx

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match="apt-get install g\\+\\+-aarch64-linux-gnu"):
        cross_gxx("aarch64")


def test_no_armv7_runtime_wheel_is_a_clear_error(monkeypatch, tmp_path):
    from edgecc.runtime.deploy import fetch_runtime

    monkeypatch.setenv("EDGECC_CACHE", str(tmp_path))
    with pytest.raises(ToolchainError, match="PyPI has no apache-tvm wheel"):
        fetch_runtime("armv7")


def test_runner_command_refuses_non_arm_targets(tmp_path):
    rc, _, err = edgecc_cli("runner", "--target", "host", "-o", tmp_path)
    assert rc == 2 and "ARM targets" in one_error_line(err)


@pytest.mark.parametrize("target, runner", [
    ("rpi4", ("aarch64", "cpu")), ("armv7", ("armv7", "cpu")), ("arm-cpu", ("aarch64", "cpu")),
    ("jetson-orin-gpu", ("aarch64", "cuda")), ("cuda", ("x86_64", "cuda")), ("imx93-npu", ("aarch64", "cpu")),
])
def test_each_board_target_names_the_runner_it_needs(target, runner):
    assert get_target(target).deploy_runner() == runner


@pytest.mark.parametrize("target, reason", [
    ("host", "built for ARM targets and CUDA GPUs"), ("rk3588-gpu", "no OpenCL runtime"),
    ("ethos-u", "built for ARM targets and CUDA GPUs"),
])
def test_targets_without_a_runner_say_why(target, reason):
    with pytest.raises(TargetError, match=reason):
        get_target(target).deploy_runner()


# ----- cross builds ----------------------------------------------------------------------------
def compile_for(target: str, model: str, path, **options) -> str:
    compiled = edgecc.compile(os.path.join(DATA, f"{model}.onnx"), target, **options)
    compiled.export(path)
    return str(path)


DLOPEN_PROGRAM = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *lib = dlopen(argv[1], RTLD_LAZY);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    printf("%s\n", dlsym(lib, "__tvm_ffi__library_bin") ? "loaded" : "no TVM library blob");
    return 0;
}
"""


def readelf_attributes(lib) -> str:
    return subprocess.run(["arm-linux-gnueabihf-readelf", "-A", str(lib)], capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.slow
def test_armv7_cross_build_is_a_hard_float_arm_library_that_loads(tmp_path, monkeypatch):
    """PyPI has no ARMv7 TVM runtime, so the library cannot run here: checked instead are its ELF
    header and ARM attributes, that ARMv7 glibc's loader links it (under qemu-arm), and that
    `edgecc run` refuses it with the one-line error naming the missing runtime."""
    assert HAVE_ARMHF_GCC, "arm-linux-gnueabihf-gcc not installed (apt-get install gcc-arm-linux-gnueabihf)"
    assert HAVE_QEMU_ARM, "qemu-arm not installed (apt-get install qemu-user)"
    lib = compile_for("armv7", "resnet_tiny", tmp_path / "resnet_armv7.so")
    assert library_arch(lib) == "arm"
    with open(lib, "rb") as fh:
        header = fh.read(52)
    assert header[4] == 1 and header[5] == 1  # ELFCLASS32, little-endian
    assert int.from_bytes(header[16:18], "little") == 3  # ET_DYN: a shared object
    flags = int.from_bytes(header[36:40], "little")
    assert flags >> 24 == 5 and flags & 0x400  # EABI version 5, EF_ARM_ABI_FLOAT_HARD
    attributes = readelf_attributes(lib)
    for line in ("Tag_CPU_arch: v7", "Tag_CPU_arch_profile: Application", "Tag_ABI_VFP_args: VFP registers",
                 "Tag_Advanced_SIMD_arch: NEON"):
        assert line in attributes, attributes

    (tmp_path / "load.c").write_text(DLOPEN_PROGRAM)
    subprocess.run(["arm-linux-gnueabihf-gcc", str(tmp_path / "load.c"), "-o", str(tmp_path / "load"), "-ldl"],
                   check=True)
    loaded = subprocess.run([QEMU_ARM, "-L", "/usr/arm-linux-gnueabihf", str(tmp_path / "load"), lib],
                            capture_output=True, text=True, check=False)
    assert (loaded.returncode, loaded.stdout) == (0, "loaded\n"), loaded.stderr

    cache = tmp_path / "cache"  # no ARMv7 runtime built by hand in it
    monkeypatch.setenv("EDGECC_CACHE", str(cache))
    from edgecc.runtime.deploy import runtime_dir

    refusal = (f"no TVM runtime for armv7: PyPI has no apache-tvm wheel for it; build libtvm_runtime.so and "
               f"libtvm_ffi.so for armv7 from source and put them, with tvm_ffi's include/ folder, in "
               f"{runtime_dir('armv7')}")
    with pytest.raises(ToolchainError) as refused:
        load_any(lib)
    assert str(refused.value) == refusal
    rc, out, err = edgecc_cli("run", lib, env=dict(os.environ, EDGECC_CACHE=str(cache)))
    assert (rc, out, err) == (2, "", f"edgecc: error: {refusal}\n")


@pytest.fixture(scope="session")
def aarch64_runner():
    """The AArch64 deploy runner, built with the cross g++ against the runtime from PyPI."""
    missing = [what for what, ok in (("aarch64-linux-gnu-gcc", HAVE_AARCH64_GCC),
                                     ("aarch64-linux-gnu-g++", HAVE_AARCH64_GXX),
                                     ("qemu-aarch64", HAVE_QEMU_AARCH64)) if not ok]
    assert not missing, f"{', '.join(missing)} not installed (apt-get install g++-aarch64-linux-gnu qemu-user)"
    from edgecc.runtime.deploy import build_runner

    return build_runner("aarch64", download=True)


@pytest.mark.slow
@pytest.mark.parametrize("model, target", [("resnet_tiny", "rpi4"), ("mobilenetv2_tiny", "rpi5"),
                                           ("transformer_tiny", "rpi4")])
def test_aarch64_library_runs_under_qemu_like_onnxruntime(aarch64_runner, tmp_path, model, target):
    lib = compile_for(target, model, tmp_path / f"{model}.so")
    assert library_arch(lib) == "aarch64"
    module = load_any(lib)
    assert module.emulated and module.metadata["target"] == target
    inputs = module.random_inputs(seed=3)
    expected = run_ort(onnx.load(os.path.join(DATA, f"{model}.onnx")), inputs)
    outputs = module.run(inputs)
    assert list(outputs) == module.output_names
    for got, ref in zip(outputs.values(), expected):
        assert got.shape == ref.shape and got.dtype == ref.dtype
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def rpi4_library(aarch64_runner, tmp_path_factory):
    return compile_for("rpi4", "transformer_tiny", tmp_path_factory.mktemp("rpi4") / "model.so",
                       input_shapes={"input_ids": (1, 16)})  # fixed: the runner's --info gives the input's size


@pytest.mark.slow
def test_edgecc_run_compares_an_emulated_library_and_refuses_to_time_it(rpi4_library):
    model = os.path.join(DATA, "transformer_tiny.onnx")
    rc, out, err = edgecc_cli("run", rpi4_library, "--compare-onnxruntime", model)
    assert rc == 0, err
    assert "qemu-user" in err and out.splitlines()[1].split()[-1] == "yes"
    for flags in (["--benchmark", "5"], ["--profile"]):
        rc, out, err = edgecc_cli("run", rpi4_library, *flags)
        assert (rc, out) == (2, "")
        assert one_error_line(err) == (f"edgecc: error: {rpi4_library}: {flags[0]} refused: the aarch64 library runs "
                                       f"under qemu-user emulation here, whose timings say nothing about the board")


@pytest.mark.slow
def test_missing_qemu_is_one_error_naming_the_package(rpi4_library, tmp_path):
    rc, _, err = edgecc_cli("run", rpi4_library, env=dict(os.environ, PATH=str(tmp_path)))
    assert rc == 2 and "apt-get install qemu-user" in one_error_line(err)


@pytest.mark.slow
def test_deploy_folder_runs_like_on_a_board(rpi4_library, tmp_path):
    """What a user copies to the board: the runner beside the runtime libraries and the model."""
    deploy = tmp_path / "deploy"
    rc, _, err = edgecc_cli("runner", "--target", "rpi4", "-o", deploy, "--model", rpi4_library)
    assert rc == 0, err
    assert sorted(p.name for p in deploy.iterdir()) == ["edgecc-runner", "libtvm_ffi.so", "libtvm_runtime.so",
                                                       "model.so"]
    qemu = [shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static"), "-L", "/usr/aarch64-linux-gnu"]
    info = subprocess.run([*qemu, "./edgecc-runner", "model.so", "--info"], cwd=deploy, capture_output=True,
                          text=True, check=True)
    spec = json.loads(info.stdout)["inputs"][0]
    x = np.random.default_rng(1).standard_normal(spec["shape"]).astype(spec["dtype"])
    np.save(deploy / "x.npy", x)
    run = subprocess.run([*qemu, "./edgecc-runner", "model.so", "--input", f"{spec['name']}=x.npy",
                          "--output-dir", ".", "--repeat", "2", "--warmup", "1"],
                         cwd=deploy, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "median" in run.stdout  # timing lines are printed (their values under qemu mean nothing)
    expected = run_ort(onnx.load(os.path.join(DATA, "transformer_tiny.onnx")), {spec["name"]: x})[0]
    np.testing.assert_allclose(np.load(deploy / "output0.npy"), expected, rtol=1e-4, atol=1e-4)
    bad = subprocess.run([*qemu, "./edgecc-runner", "model.so", "--input", "nope=x.npy"], cwd=deploy,
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "no input 'nope'" in bad.stderr


@pytest.mark.slow
def test_emulated_library_with_several_inputs_outputs_and_dtypes(aarch64_runner, tmp_path):
    """Outputs come back as a tuple from the VM: each keeps its name, shape and dtype."""
    from onnx import helper
    from ort_compare import make_model

    rng = np.random.default_rng(0)
    inputs = {"a": rng.standard_normal((2, 8)).astype(np.float32), "b": rng.standard_normal((2, 8)).astype(np.float32)}
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]),
             helper.make_node("ArgMax", ["sum"], ["index"], axis=1, keepdims=0),
             helper.make_node("Greater", ["a", "b"], ["greater"])]
    model = make_model(nodes, inputs, ["sum", "index", "greater"])
    compiled = edgecc.compile(model, "rpi4")
    compiled.export(tmp_path / "m.so")
    module = load_any(tmp_path / "m.so")
    outputs = module.run(inputs)
    assert list(outputs) == ["sum", "index", "greater"]
    for got, ref in zip(outputs.values(), run_ort(model, inputs)):
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_int8_model_runs_on_integer_kernels_under_qemu_like_onnxruntime(aarch64_runner, tmp_path):
    """A CNN quantized by ONNX Runtime (operator form) built for AArch64: the integer kernels give
    ONNX Runtime's results exactly."""
    from test_quant import all_ops, image_feeds, ort_quantize_static

    path = ort_quantize_static(os.path.join(DATA, "resnet_tiny.onnx"), str(tmp_path / "q.onnx"), image_feeds(8),
                               "QOperator", "uint8")
    compiled = edgecc.compile(path, "rpi5")
    assert "qconv" in all_ops(compiled.graph)
    compiled.export(str(tmp_path / "q.so"))
    module = load_any(str(tmp_path / "q.so"))
    assert module.emulated
    feed = image_feeds(1, seed=5)[0]
    got = list(module.run(feed).values())[0]
    np.testing.assert_allclose(got, run_ort(onnx.load(path), feed)[0], rtol=0, atol=1e-6)
