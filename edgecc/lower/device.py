"""GPU kernels before the build: every loop nest bound to GPU threads, and each kernel's launches.

`check_thread_binding(mod)` refuses a module holding a kernel with work outside any
`blockIdx`/`threadIdx` loop: TVM would compile such a kernel, silently, into host code.

`kernel_launches(mod, target)` lowers the kernels the way `tvm.compile` does (TVM's default TIR
pipeline, read right after it splits host from device code) and returns, per kernel, the device
functions its host code launches, in order: their arguments (the kernel's parameters or
temporary device buffers the host allocates) and their grid and block sizes, which come from
the kernel's thread bindings. The OpenCL emulator (`edgecc.runtime.opencl`) launches the
kernels of a built library from this table, which the build stores in the library's metadata.
"""

from __future__ import annotations

from edgecc.errors import ScheduleError

__all__ = ["add_device_metadata", "check_thread_binding", "kernel_launches", "unbound_blocks"]

THREAD_TAGS = ("blockIdx.", "threadIdx.", "vthread")
LAUNCH_AXES = ("x", "y", "z")


def _prim_funcs(mod):
    import tvm

    return [(gv.name_hint, func) for gv, func in mod.functions_items() if isinstance(func, tvm.tirx.PrimFunc)]


def unbound_blocks(func) -> list[str]:
    """Names of the buffers `func` writes outside every GPU thread loop."""
    import tvm

    found: list[str] = []

    def visit(stmt, bound: bool) -> None:
        if isinstance(stmt, tvm.tirx.For):
            inside = bound or (stmt.kind == tvm.tirx.ForKind.THREAD_BINDING and stmt.thread_binding is not None
                               and str(stmt.thread_binding.thread_tag).startswith(THREAD_TAGS))
            visit(stmt.body, inside)
        elif isinstance(stmt, tvm.tirx.AttrStmt):
            visit(stmt.body, bound or stmt.attr_key == "thread_extent")
        elif isinstance(stmt, tvm.tirx.BufferStore):
            if not bound:
                found.append(stmt.buffer.name)
        else:
            for child in _children(stmt):
                visit(child, bound)

    visit(func.body, False)
    return sorted(set(found))


def _children(stmt) -> list:
    """The statements directly inside `stmt` (blocks, sequences, conditions, allocations)."""
    import tvm

    if isinstance(stmt, tvm.tirx.SeqStmt):
        return list(stmt.seq)
    if isinstance(stmt, tvm.tirx.IfThenElse):
        return [s for s in (stmt.then_case, stmt.else_case) if s is not None]
    children = []
    for name in ("body", "block", "init"):
        child = getattr(stmt, name, None)
        if isinstance(child, tvm.tirx.Stmt):
            children.append(child)
    return children


def check_thread_binding(mod) -> None:
    """ScheduleError naming every kernel of `mod` that has work left outside GPU threads."""
    problems = []
    for name, func in _prim_funcs(mod):
        unbound = unbound_blocks(func)
        if unbound:
            problems.append(f"{name} (writes {', '.join(unbound)} outside blockIdx/threadIdx loops)")
    if problems:
        raise ScheduleError("a GPU library cannot hold kernels without thread binding: " + "; ".join(problems))


def kernel_launches(mod, target) -> dict[str, dict]:
    """Kernel name -> {"workspaces": [{"name", "bytes"}], "launches": [{"function", "args", "grid",
    "block"}], "writes": [i, ...]}; an argument is ["param", i] or ["workspace", j]; `writes` lists
    the parameters the kernel writes (its outputs)."""
    import tvm

    kernels = tvm.IRModule({gv: func for gv, func in mod.functions_items() if isinstance(func, tvm.tirx.PrimFunc)})
    split = _split_host_device(kernels, target.tvm_target())
    table = {}
    for name, func in _prim_funcs(kernels):
        params = [str(p.name) for p in func.params]
        table[name] = {**_host_launches(split[name], params), "writes": _written_params(func, params)}
    return table


def _written_params(func, params: list[str]) -> list[int]:
    """Indices of the parameters `func` stores to (its outputs)."""
    import tvm
    import tvm_ffi

    stored: set[str] = set()
    tvm_ffi.structural_walk(func.body, [(tvm.tirx.BufferStore, lambda n: stored.add(str(n.buffer.name)))],
                            order="pre")
    return [i for i, name in enumerate(params) if name in stored]


def _split_host_device(mod, tvm_target):
    """`mod` lowered by TVM's default TIR pipeline as far as its host/device split."""
    import tvm

    captured = {}

    @tvm.instrument.pass_instrument
    class CaptureSplit:
        def run_after_pass(self, module, info):
            if info.name.endswith("SplitHostDevice"):
                captured["mod"] = module

    pipeline, _, _ = tvm.tirx.get_default_tir_pipeline(tvm_target)
    bound = tvm.tirx.transform.BindTarget(tvm_target.with_host(tvm_target.host))(mod)
    with tvm.transform.PassContext(instruments=[CaptureSplit()]), tvm_target:
        pipeline(bound)
    return captured["mod"]


def _host_launches(host_func, param_names: list[str]) -> dict:
    import numpy as np
    import tvm
    import tvm_ffi

    workspaces: list[dict] = []
    launches: list[dict] = []

    def on_alloc(node) -> None:
        buf = node.buffer
        size = int(np.prod([int(d) for d in buf.shape])) * np.dtype(str(buf.dtype)).itemsize
        workspaces.append({"name": str(buf.name), "bytes": size})

    def on_call(node) -> None:
        if node.op.name != "tirx.call_ffi_kernel":
            return
        tags = [str(t) for t in node.attrs.launch_params]
        values = list(node.args[1:])
        extents, args = values[len(values) - len(tags):], values[:len(values) - len(tags)]
        grid, block = [1, 1, 1], [1, 1, 1]
        for tag, extent in zip(tags, extents):
            kind, axis = tag.split(".")
            (grid if kind == "blockIdx" else block)[LAUNCH_AXES.index(axis)] = int(extent)
        launches.append({"function": str(node.args[0].value), "args": [_arg_ref(a, param_names, workspaces)
                                                                         for a in args],
                         "grid": grid, "block": block})

    tvm_ffi.structural_walk(host_func.body, [(tvm.tirx.AllocBuffer, on_alloc), (tvm.ir.Call, on_call)], order="pre")
    return {"workspaces": workspaces, "launches": launches}


def _arg_ref(arg, param_names: list[str], workspaces: list[dict]) -> list:
    """["param", i] or ["workspace", j] for the buffer whose data a launch passes."""
    import tvm

    if isinstance(arg, tvm.ir.Call) and arg.op.name == "tirx.buffer_data":
        name = str(arg.args[0].name)
        if name in param_names:
            return ["param", param_names.index(name)]
        for j, ws in enumerate(workspaces):
            if ws["name"] == name:
                return ["workspace", j]
    raise ScheduleError(f"a GPU kernel launch passes {arg}, which is neither a kernel parameter nor a "
                        f"device buffer the kernel allocates")


def add_device_metadata(mod, target):
    """`mod` with its metadata function extended by the device type, the precision and, for
    OpenCL, each kernel's launches (`kernel_launches`)."""
    import json

    from tvm import ir, relax

    from .relax_module import METADATA_FUNCTION

    gv = mod.get_global_var(METADATA_FUNCTION)
    metadata = json.loads(mod[gv].body.body.value)
    metadata.update(device=target.device_type, precision=target.precision)
    if target.device_type == "opencl":
        metadata["launches"] = kernel_launches(mod, target)
    bb = relax.BlockBuilder()
    with bb.function(METADATA_FUNCTION, []):
        bb.emit_func_output(ir.StringImm(json.dumps(metadata, sort_keys=True)))
    mod[gv] = bb.get()[METADATA_FUNCTION]
    return mod
