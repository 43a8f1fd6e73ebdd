"""The command line as build systems use it: outputs, exit codes, one-line errors."""

import os
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper
from ort_compare import make_model, run_ort
from terminal import read_terminal

from edgecc import cli
from edgecc.errors import InputError, TargetError
from edgecc.passes import PassError

DATA = os.path.join(os.path.dirname(__file__), "data")
MODEL = os.path.join(DATA, "mobilenetv2_tiny.onnx")


def edgecc(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc, err, pattern):
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("edgecc: error: ") and pattern in lines[0], lines[0]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    out = tmp_path_factory.mktemp("lib") / "model.so"
    rc, stdout, err = edgecc("compile", MODEL, "-o", out, "-q")
    assert rc == 0, err
    assert stdout == "" and out.exists()
    return out


def test_compile_run_and_save_outputs_by_name(library, tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, out, err = edgecc("run", library, "--input", f"input={tmp_path / 'x.npy'}", "--output", tmp_path / "out.npz")
    assert rc == 0, err
    with np.load(tmp_path / "out.npz") as saved:
        assert saved.files == ["output"]
        expected = run_ort(onnx.load(MODEL), {"input": x})[0]
        np.testing.assert_allclose(saved["output"], expected, rtol=1e-4, atol=1e-4)


def test_report_of_a_file_that_is_not_an_edgecc_library_is_a_user_error(library, tmp_path):
    (tmp_path / "notes.md").write_text("# notes\n")
    rc, _, err = edgecc("report", tmp_path / "notes.md")
    assert_one_line_error(rc, err, "notes.md: not a library built by edgecc")
    rc, out, err = edgecc("report", library)
    assert rc == 0 and out.strip() == f"{library}: no NPU regions", err


def test_compare_onnxruntime_reports_errors_per_output(library):
    rc, out, err = edgecc("run", library, "--compare-onnxruntime", MODEL)
    assert rc == 0, err
    line = [ln for ln in out.splitlines() if ln.startswith("output ") or ln.startswith("output  ")][-1]
    assert line.split()[-1] == "yes"
    abs_err = float(line.split()[1])
    assert abs_err < 1e-3


def test_run_profile_times_every_kernel_of_the_library(library):
    from edgecc.runtime import load

    kernels = {k["name"]: k for k in load(library).metadata["kernels"]}
    rc, out, err = edgecc("run", library, "--profile", "3")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["kernel", "kind", "calls", "ms", "share", "GFLOP/s", "schedule"]
    rows = [line.split() for line in lines[1:-1]]
    assert sorted(r[0] for r in rows) == sorted(kernels)
    for name, kind, calls, ms, share, gflops, schedule in rows:
        assert (kind, int(calls), schedule) == (kernels[name]["kind"], kernels[name]["calls"],
                                                kernels[name]["scheduled_by"])
        assert float(ms) >= 0 and (gflops == "-") == (kernels[name]["flops"] == 0)
    assert [float(r[3]) for r in rows] == sorted((float(r[3]) for r in rows), reverse=True)
    assert sum(float(r[4].rstrip("%")) for r in rows) == pytest.approx(100, abs=0.1 * len(rows))
    total = lines[-1].split()
    assert total[:4] == ["sum", "of", "kernel", "times"] and float(total[4]) == pytest.approx(
        sum(float(r[3]) for r in rows), abs=0.001 * len(rows))


def test_run_on_one_thread_gives_the_same_outputs(library):
    rc, out, err = edgecc("run", library, "--threads", "1", "--compare-onnxruntime", MODEL, "--benchmark", "2")
    assert rc == 0, err
    assert out.splitlines()[1].split()[-1] == "yes"
    assert re.fullmatch(r"latency: median [\d.]+ ms, .* over 2 runs, 1 thread", out.splitlines()[-1])
    rc, _, err = edgecc("run", library, "--threads", "0")
    assert rc == 2 and "argument --threads: expected a positive whole number, got '0'" in err


def offset_model(offset: float) -> onnx.ModelProto:
    """y = x + offset: two such models give the same shapes and names but different outputs."""
    x = np.zeros((2, 8), np.float32)
    return make_model([helper.make_node("Add", ["x", "c"], ["y"])], {"x": x}, ["y"],
                      initializers={"c": np.full((8,), offset, np.float32)})


@pytest.fixture(scope="module")
def offset_library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offset")
    for offset in (1.0, 1.5):
        onnx.save(offset_model(offset), folder / f"plus_{offset}.onnx")
    rc, _, err = edgecc("compile", folder / "plus_1.0.onnx", "-o", folder / "plus_1.0.so", "-q")
    assert rc == 0, err
    return folder


def test_compare_exits_0_when_outputs_match(offset_library):
    rc, out, err = edgecc("run", offset_library / "plus_1.0.so", "--compare-onnxruntime",
                          offset_library / "plus_1.0.onnx", "--rtol", "0", "--atol", "0")
    assert rc == 0, err
    row = out.splitlines()[1].split()
    assert row[0] == "y" and float(row[1]) == 0.0 and row[-1] == "yes"
    assert err == ""


def test_compare_exits_3_when_outputs_differ(offset_library):
    rc, out, err = edgecc("run", offset_library / "plus_1.0.so", "--compare-onnxruntime",
                          offset_library / "plus_1.5.onnx")
    assert rc == 3, err
    row = out.splitlines()[1].split()
    assert row[0] == "y" and float(row[1]) == pytest.approx(0.5) and row[-1] == "NO"
    assert err.strip() == "edgecc: outputs differ from ONNX Runtime beyond the tolerance"


STAGE_SUMMARY = re.compile(r"edgecc: (\w+): (\d+)(?:/(\d+))? in \d+\.\d s")


def test_compile_in_a_build_log_prints_one_line_per_stage_not_per_kernel(offset_library, tmp_path):
    rc, out, err = edgecc("compile", MODEL, "-o", tmp_path / "m.so")
    assert rc == 0, err
    stages = {}
    for line in err.splitlines():
        match = STAGE_SUMMARY.fullmatch(line)
        assert match, f"not a stage summary: {line!r}"
        stages[match[1]] = (int(match[2]), match[3] and int(match[3]))
    assert {"frontend", "passes", "lower"} <= set(stages)
    kernels = int(re.search(r"\): (\d+) kernels \(", out)[1])
    done, total = stages["lower"]
    assert done == total >= kernels  # every kernel lowered (some may end up as views, not counted as kernels)
    assert out.startswith(f"wrote {tmp_path / 'm.so'} (") and len(out.splitlines()) == 2


def test_compile_on_a_terminal_draws_one_live_bar(tmp_path):
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "edgecc", "compile", MODEL, "-o", str(tmp_path / "m.so")],
                            stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    out, _ = proc.communicate(timeout=600)
    seen = read_terminal(leader)
    assert proc.returncode == 0, seen
    assert "\n" not in seen, seen  # every redraw returns to the start of the same line
    draws = seen.split("\r")[1:]
    assert re.fullmatch(r"edgecc: lower \[#+\] (\d+)/\1 +\d+\.\d s\x1b\[K", draws[-2]), draws[-2]
    assert draws[-1] == "\x1b[K"  # erased when done
    assert out.startswith("wrote ")


@pytest.fixture
def failing_injective_rule(monkeypatch):
    """The injective schedule rule raises: its kernels fall back to the generic schedule."""
    from edgecc.lower.schedules import RULES, cpu  # noqa: F401  (cpu registers the rules)

    def rule(kernel, target):
        raise RuntimeError("no vector registers left")

    monkeypatch.setitem(RULES, "injective", rule)


def test_compile_summary_names_kernels_without_their_intended_schedule(offset_library, failing_injective_rule,
                                                                       capsys, tmp_path):
    assert cli.main(["compile", str(offset_library / "plus_1.5.onnx"), "-o", str(tmp_path / "m.so")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == ["0 of 1 kernels from tuning records",
                       "1 kernels did not get their intended schedule:",
                       "  k0_add (injective): default -> generic: "
                       "the injective rule raised RuntimeError: no vector registers left"]


def test_strict_schedules_makes_a_fallback_an_error(offset_library, failing_injective_rule, capsys, tmp_path):
    out = tmp_path / "m.so"
    assert cli.main(["compile", str(offset_library / "plus_1.5.onnx"), "-o", str(out), "--strict-schedules"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert captured.err == ("edgecc: error: 1 kernel(s) did not get their intended schedule: k0_add "
                            "(injective): default -> generic: the injective rule raised RuntimeError: "
                            "no vector registers left\n")


def test_strict_schedules_passes_when_every_kernel_gets_its_schedule(offset_library, tmp_path):
    rc, out, err = edgecc("compile", offset_library / "plus_1.5.onnx", "-o", tmp_path / "m.so",
                          "--strict-schedules")
    assert rc == 0, err
    assert "did not get" not in out and (tmp_path / "m.so").exists()


def zero_channel_model() -> onnx.ModelProto:
    """A conv with one all-zero filter feeding a padded conv: prune-zero-channels keeps it, with a note."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    w1[0] = 0
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"]),
             helper.make_node("Conv", ["h", "w2"], ["y"], pads=[1, 1, 1, 1])]
    return make_model(nodes, {"x": np.zeros((1, 3, 8, 8), np.float32)}, ["y"],
                      initializers={"w1": w1, "b1": np.ones(4, np.float32),
                                    "w2": rng.standard_normal((2, 4, 3, 3)).astype(np.float32)})


def broadcast_add_model() -> onnx.ModelProto:
    """x + zeros that broadcast x to another shape: simplify-arithmetic matches and declines."""
    return make_model([helper.make_node("Add", ["x", "c"], ["y"])], {"x": np.zeros(8, np.float32)}, ["y"],
                      initializers={"c": np.zeros((2, 8), np.float32)})


def test_remarks_print_notes_and_verbose_adds_rejections(tmp_path):
    onnx.save(zero_channel_model(), tmp_path / "zero.onnx")
    onnx.save(broadcast_add_model(), tmp_path / "add.onnx")
    note = ("edgecc: remark: prune-zero-channels: h: 1 zero channel(s) kept: y pads its input: the constant "
            "channel cannot move into its bias")
    rejection = "edgecc: remark: simplify-arithmetic: y: AddNeutral: the constant broadcasts x to another shape"
    direct = ("edgecc: remark: winograd: y_2: stays direct: cheaper for a 8x8 output with 4 input channels (too few "
              "tiles to reuse transformed weights, or too few channels to share transforms)")
    for model, flag, expected in (("zero", "--remarks", f"{note}\n{direct}"), ("add", "--remarks", ""), ("add", "-v", rejection),
                                  ("zero", None, "")):
        rc, out, err = edgecc("compile", tmp_path / f"{model}.onnx", "-o", tmp_path / "m.so", "-q",
                              *([flag] if flag else []))
        assert (rc, out, err.strip()) == (0, "", expected), (model, flag)
    rc, out, err = edgecc("inspect", tmp_path / "zero.onnx", "--remarks")
    assert rc == 0 and err.strip() == f"{note}\n{direct}"


def test_limits_apply_to_compile_and_inspect(tmp_path):
    over = "initializer 'fc.weight' (10, 64): a tensor of 2560 bytes exceeds the limit of 1024 bytes"
    resnet = os.path.join(DATA, "resnet_tiny.onnx")
    for command in (["compile", resnet, "-o", tmp_path / "m.so"], ["inspect", resnet]):
        rc, out, err = edgecc(*command, "--limit", "tensor_bytes=1k")
        assert_one_line_error(rc, err, over)
        assert out == ""
    assert not (tmp_path / "m.so").exists()
    rc, _, err = edgecc("inspect", resnet, "--limit", "tensor_bytes=1m")
    assert rc == 0, err
    rc, _, err = edgecc("inspect", resnet, "--limit", "tensors=1")
    assert_one_line_error(rc, err, "unknown limit 'tensors'")


def test_opt_levels_are_0_to_2():
    rc, _, err = edgecc("compile", MODEL, "-O", "3")
    assert rc == 2 and "argument -O: invalid choice: 3 (choose from 0, 1, 2)" in err


def test_inspect_prints_ir_counts_shapes_and_parameter_bytes():
    rc, out, err = edgecc("inspect", MODEL)
    assert rc == 0, err
    assert out.startswith("graph @")
    assert "conv(" in out and "MB of parameters" in out
    assert "// input  input: f32[1,3,64,64]" in out
    assert "// op counts:" in out


def test_inspect_fusion_lists_each_group_and_raw_shows_the_imported_ir():
    rc, out, err = edgecc("inspect", MODEL, "--fusion")
    assert rc == 0, err
    *groups, last = out.splitlines()
    count = int(re.fullmatch(r"// (\d+) fused groups, \d+ unfused nodes.*", last)[1])
    assert [int(line.split()[1]) for line in groups] == list(range(count))
    assert any(re.fullmatch(r"group +\d+ conv +conv -> .*", line) for line in groups)
    rc, out, err = edgecc("inspect", MODEL, "--raw")
    assert rc == 0, err
    assert "fused" not in out and "conv 16" in out.splitlines()[-1]


def test_compile_is_deterministic(tmp_path):
    for name in ("a.so", "b.so"):
        rc, _, err = edgecc("compile", MODEL, "-o", tmp_path / name, "-q")
        assert rc == 0, err
    assert (tmp_path / "a.so").read_bytes() == (tmp_path / "b.so").read_bytes()


def test_time_passes_and_print_ir_after(tmp_path):
    rc, out, err = edgecc("compile", MODEL, "-o", tmp_path / "m.so", "--time-passes",
                          "--print-ir-after", "fold-batch-norm", "-q")
    assert rc == 0, err
    assert "// IR after fold-batch-norm" in err and "total" in err and "fold-constants" in err


def test_truncated_model(tmp_path):
    data = open(MODEL, "rb").read()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) // 2])
    rc, _, err = edgecc("compile", tmp_path / "t.onnx", "-o", tmp_path / "t.so")
    assert_one_line_error(rc, err, "t.onnx")
    assert not (tmp_path / "t.so").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".edgecc-")]


def test_not_an_onnx_file(tmp_path):
    (tmp_path / "x.onnx").write_text("hello, I am not a model\n")
    rc, _, err = edgecc("compile", tmp_path / "x.onnx", "-o", tmp_path / "x.so")
    assert_one_line_error(rc, err, "x.onnx")
    assert not (tmp_path / "x.so").exists()


def test_unsupported_op_names_type_node_and_opset(tmp_path):
    x = np.zeros((3, 3), np.float32)
    node = helper.make_node("RandomUniformLike", ["x"], ["y"], name="find_them")
    onnx.save(make_model([node], {"x": x}, ["y"], opset=13), tmp_path / "u.onnx")
    rc, _, err = edgecc("compile", tmp_path / "u.onnx", "-o", tmp_path / "u.so")
    assert_one_line_error(rc, err, "unsupported op 'RandomUniformLike'")
    assert "find_them" in err and "opset 13" in err


def test_missing_model_and_missing_input_file(library, tmp_path):
    rc, _, err = edgecc("compile", tmp_path / "nope.onnx")
    assert_one_line_error(rc, err, "nope.onnx: no such file")
    rc, _, err = edgecc("run", library, "--input", f"input={tmp_path / 'nope.npy'}")
    assert_one_line_error(rc, err, "nope.npy: no such file")


def test_wrong_input_shape(library, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    rc, _, err = edgecc("run", library, "--input", f"input={tmp_path / 'x.npy'}")
    assert_one_line_error(rc, err, "input 'input' has shape (1, 3, 32, 32), the model expects (1, 3, 64, 64)")


def test_unknown_input_name(library, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 64, 64), np.float32))
    rc, _, err = edgecc("run", library, "--input", f"image={tmp_path / 'x.npy'}")
    assert_one_line_error(rc, err, "unknown input 'image'")


def test_unknown_target_and_unknown_pass(tmp_path):
    rc, _, err = edgecc("compile", MODEL, "--target", "quantum-9000", "-o", tmp_path / "m.so")
    assert_one_line_error(rc, err, "unknown target 'quantum-9000'")
    rc, _, err = edgecc("compile", MODEL, "--disable-pass", "no-such-pass", "-o", tmp_path / "m.so")
    assert_one_line_error(rc, err, "unknown pass 'no-such-pass'")
    for name in ("bogus", "fixpoint"):  # a group is no pass whose IR could be printed
        rc, _, err = edgecc("compile", MODEL, "--print-ir-after", name, "-o", tmp_path / "m.so")
        assert_one_line_error(rc, err, f"unknown pass '{name}'")
    assert not (tmp_path / "m.so").exists()


@pytest.mark.parametrize("options, message", [
    (["--precision", "fp16"], "target 'host' takes no option 'precision' (its options: cpu, threads)"),
    (["--arch", "sm_80"], "target 'host' takes no option 'arch' (its options: cpu, threads)"),
    (["--target", "opencl", "--arch", "sm_80"], "target 'opencl' takes no option 'arch' (its options: host, cpu,"),
    (["--target-option", "foo=1"], "target 'host' takes no option 'foo' (its options: cpu, threads)"),
    (["--target", "rk3588-gpu", "--cpu", "cortex-a55"],
     "target 'rk3588-gpu' takes no option 'cpu' (its options: precision)"),
])
def test_an_option_the_target_does_not_take_is_named_with_the_targets_options(tmp_path, options, message):
    rc, _, err = edgecc("compile", MODEL, *options, "-o", tmp_path / "m.so")
    assert_one_line_error(rc, err, message)
    assert not (tmp_path / "m.so").exists()


def test_a_type_error_inside_a_target_constructor_is_not_a_user_error(monkeypatch):
    from edgecc import targets

    def broken(cpu=None):
        raise TypeError("internal")

    monkeypatch.setitem(targets._TARGETS, "broken", (broken, "raises TypeError"))
    with pytest.raises(TypeError, match="internal"):
        targets.get_target("broken", cpu="x")


def test_bad_command_line_exits_2():
    rc, _, err = edgecc("compile")
    assert rc == 2 and "usage:" in err
    rc, _, err = edgecc("compile", MODEL, "--input-shape", "input=1,2.5,3")
    assert rc == 2 and "bad dimensions in 'input=1,2.5,3'" in err
    rc, _, err = edgecc("compile", MODEL, "--input-shape", "input=1x3", "-o", "/nonexistent/m.so")
    assert_one_line_error(rc, err, "--input-shape for 'input' has rank 2, the model's input has rank 4")


def test_bad_pass_option_is_a_user_error(tmp_path):
    rc, _, err = edgecc("compile", MODEL, "--passes", "fold-constants{no_such_option=1}", "-o", tmp_path / "m.so")
    assert_one_line_error(rc, err, "no_such_option")
    assert not (tmp_path / "m.so").exists()


@pytest.mark.parametrize("error, code, line", [
    (TargetError("unknown target 'x'"), 2, "edgecc: error: unknown target 'x'"),
    (cli.CliError("--threads must be positive"), 2, "edgecc: error: --threads must be positive"),
    (PassError("fuse", ["simplify"], InputError("input 'x' has no shape")), 2,
     "edgecc: error: input 'x' has no shape (in pass 'fuse')"),
    (PassError("fuse", ["simplify"], PassError("inner", [], TargetError("no layouts"))), 2,
     "edgecc: error: no layouts (in pass 'fuse')"),
    (PassError("fuse", ["simplify"], KeyError("boom")), 1, "edgecc: internal error: PassError: pass 'fuse' failed"),
    (type("PassOptionError", (ValueError,), {})("a look-alike"), 1,
     "edgecc: internal error: PassOptionError: a look-alike"),
])
def test_user_errors_are_decided_by_class(monkeypatch, capsys, error, code, line):
    def fail(args):
        raise error

    monkeypatch.setattr(cli, "cmd_targets", fail)
    assert cli.main(["targets"]) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and len(err.splitlines()) == 1, err


def test_internal_errors_exit_1(monkeypatch, capsys):
    def boom(args):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(cli, "cmd_targets", boom)
    assert cli.main(["targets"]) == 1
    assert "internal error: RuntimeError: something inside broke" in capsys.readouterr().err


def test_passes_lists_every_pass_and_the_opt_level_pipelines():
    from edgecc.passes import all_passes
    from edgecc.passes.pipeline import OPT_LEVELS

    rc, out, err = edgecc("passes")
    assert rc == 0, err
    listed = [line.split()[0] for line in out.split("\n\n")[0].splitlines()]
    assert listed == list(all_passes())
    levels = [line for line in out.splitlines() if line.startswith("-O")]
    assert levels == [f"-O{level} adds: {', '.join(names) or '(nothing)'}" for level, names in OPT_LEVELS.items()]
    assert [line.split(":")[0] for line in levels] == ["-O0 adds", "-O1 adds", "-O2 adds"]


def test_help_does_not_import_tvm():
    code = "import sys; from edgecc import cli; cli.build_parser(); print('tvm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
