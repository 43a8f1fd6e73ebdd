"""GPU kernels before the build: every loop nest bound to GPU threads, and each kernel's launches.

`check_thread_binding(mod)` refuses a module holding a kernel with work outside any
`blockIdx`/`threadIdx` loop: TVM would compile such a kernel, silently, into host code.

`kernel_launches(mod, target)` lowers the kernels the way `tvm.compile` does (TVM's default TIR
pipeline, read right after it splits host from device code) and returns, per kernel, the device
functions its host code launches, in order: their arguments (the kernel's parameters or
temporary device buffers the host allocates, or scalars such as a size variable) and their grid
and block sizes, which come from the kernel's thread bindings. The OpenCL emulator
(`edgecc.runtime.opencl`) launches the kernels of a built library from this table, which the
build stores in the library's metadata.

A kernel with symbolic extents has launch sizes, workspace sizes and scalar arguments that are
known only at run time: each is then a *size expression* (`size_expression`), JSON that names
where its variables come from: `["shape", i, axis]` (dimension `axis` of parameter i),
`["offset", i]` (parameter i's element offset), `["param", i]` (scalar parameter i), ints, and
`[op, a, b]` for op in `SIZE_OPS`. Fixed sizes stay plain ints.

Such a model's Relax VM also calls host *shape functions* (Relax's `VMShapeLower` computes the
sizes derived from the inputs' dimensions, `batch*seq`, into the VM's shape heap).
`shape_functions(mod, target)` records them as ordered stores `[slot, size expression]` over
`["heap", i]`, so the emulator computes them too: a Mali library's host code is AArch64.
"""

from __future__ import annotations

from edgecc.errors import ScheduleError

__all__ = ["add_device_metadata", "check_thread_binding", "host_calls", "kernel_launches", "shape_functions",
           "size_expression", "unbound_blocks"]

THREAD_TAGS = ("blockIdx.", "threadIdx.", "vthread")
LAUNCH_AXES = ("x", "y", "z")
#: operators of a size expression (integer arithmetic; "div" and "mod" truncate, "floordiv" and
#: "floormod" round down)
SIZE_OPS = ("add", "sub", "mul", "div", "mod", "floordiv", "floormod", "min", "max")


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
    """ScheduleError naming every kernel of `mod` that has work left outside GPU threads: stores,
    or calls of host functions (TOPI's CPU sort behind TopK)."""
    problems = []
    for name, func in _prim_funcs(mod):
        unbound = unbound_blocks(func)
        if unbound:
            problems.append(f"{name} (writes {', '.join(unbound)} outside blockIdx/threadIdx loops)")
        calls = host_calls(func)
        if calls:
            problems.append(f"{name} (calls the host function {calls[0]})")
    if problems:
        raise ScheduleError("a GPU library cannot hold kernels without thread binding: " + "; ".join(problems))


def host_calls(func) -> list[str]:
    """Names of the packed (host) functions `func` calls."""
    import tvm
    import tvm_ffi

    found: list[str] = []

    def on_call(node) -> None:
        if isinstance(node.op, tvm.ir.Op) and "call_packed" in node.op.name:
            first = node.args[0] if node.args else None
            found.append(str(first.value) if hasattr(first, "value") else node.op.name)

    tvm_ffi.structural_walk(func.body, [(tvm.ir.Call, on_call)], order="pre")
    return found


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
    sizes = _SizeSources(host_func)

    def on_let(node) -> None:
        sizes.lets.append((node.var, node.value))

    def on_alloc(node) -> None:
        buf = node.buffer
        elements = [sizes.expression(d) for d in buf.shape]
        nbytes = np.dtype(str(buf.dtype)).itemsize
        for e in elements:
            nbytes = nbytes * e if isinstance(e, int) and isinstance(nbytes, int) else ["mul", nbytes, e]
        workspaces.append({"name": str(buf.name), "bytes": nbytes})

    def on_call(node) -> None:
        if node.op.name != "tirx.call_ffi_kernel":
            return
        tags = [str(t) for t in node.attrs.launch_params]
        values = list(node.args[1:])
        extents, args = values[len(values) - len(tags):], values[:len(values) - len(tags)]
        grid, block = [1, 1, 1], [1, 1, 1]
        for tag, extent in zip(tags, extents):
            kind, axis = tag.split(".")
            (grid if kind == "blockIdx" else block)[LAUNCH_AXES.index(axis)] = sizes.expression(extent)
        launches.append({"function": str(node.args[0].value),
                         "args": [_arg_ref(a, param_names, workspaces, sizes) for a in args],
                         "grid": grid, "block": block})

    tvm_ffi.structural_walk(host_func.body, [(tvm.tirx.LetStmt, on_let), (tvm.tirx.AllocBuffer, on_alloc),
                                             (tvm.ir.Call, on_call)], order="pre")
    return {"workspaces": workspaces, "launches": launches}


class _SizeSources:
    """Where the variables of a host function's sizes come from: its buffers' shapes and element
    offsets, its scalar parameters, and the values its let statements bind."""

    def __init__(self, host_func):
        from tvm import tirx

        self.sources: list[tuple[object, list]] = []
        self.lets: list[tuple[object, object]] = []
        for i, param in enumerate(host_func.params):
            if not isinstance(param.ty, tirx.BufferType):
                self.sources.append((param, ["param", i]))
                continue
            for axis, dim in enumerate(param.shape):
                self.sources.append((dim, ["shape", i, axis]))
            self.sources.append((param.elem_offset, ["offset", i]))

    def expression(self, expr):
        """`expr` (a PrimExpr) as a size expression: an int when it is constant."""
        return size_expression(expr, self._variable)

    def _variable(self, var):
        from tvm import tirx

        if not isinstance(var, tirx.Var):
            raise ScheduleError(f"a GPU kernel launch needs {var} at run time, which edgecc cannot record")
        for known, source in self.sources:
            if known.same_as(var):
                return source
        for known, value in self.lets:
            if known.same_as(var):
                return self.expression(value)
        raise ScheduleError(f"a GPU kernel launch needs the size {var}, which is not a shape, element offset or "
                            f"scalar argument of the kernel")


def size_expression(expr, leaf):
    """`expr` (an integer PrimExpr) as a size expression (module docstring): constants as ints,
    arithmetic as [op, a, b], anything else (a variable, a load) as `leaf(expr)` says."""
    import tvm
    from tvm import tirx

    expr = tvm.sym.Analyzer().simplify(expr)
    if isinstance(expr, tirx.IntImm):
        return int(expr.value)
    if isinstance(expr, tirx.Cast):
        return size_expression(expr.value, leaf)
    for name in SIZE_OPS:
        if isinstance(expr, getattr(tirx, _TIR_OPS[name])):
            return [name, size_expression(expr.a, leaf), size_expression(expr.b, leaf)]
    return leaf(expr)


#: size-expression operator -> TIR node class
_TIR_OPS = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "mod": "Mod", "floordiv": "FloorDiv",
            "floormod": "FloorMod", "min": "Min", "max": "Max"}


def _arg_ref(arg, param_names: list[str], workspaces: list[dict], sizes: _SizeSources) -> list:
    """["param", i] or ["workspace", j] for the buffer whose data a launch passes, or
    ["scalar", dtype, size expression] for a value (a size variable, an element offset)."""
    import tvm

    if isinstance(arg, tvm.ir.Call) and arg.op.name == "tirx.buffer_data":
        name = str(arg.args[0].name)
        if name in param_names:
            return ["param", param_names.index(name)]
        for j, ws in enumerate(workspaces):
            if ws["name"] == name:
                return ["workspace", j]
    elif isinstance(getattr(arg, "ty", None), tvm.ir.PrimType) and "int" in str(arg.ty.dtype):
        return ["scalar", str(arg.ty.dtype), sizes.expression(arg)]
    raise ScheduleError(f"a GPU kernel launch passes {arg}, which is neither a kernel parameter, a device "
                        f"buffer the kernel allocates nor an integer size")


def shape_functions(mod, target) -> dict[str, dict]:
    """Host shape function name -> {"heap": its shape heap's length, "stores": [[slot, size
    expression], ...] in order}: the functions Relax's VM lowering adds to `mod` for the sizes
    `main` computes from its symbolic dimensions (none when its shapes are fixed)."""
    from tvm import relax, tirx
    from tvm.relax.pipeline import default_build_pipeline

    if not relax.analysis.defined_symbolic_vars(mod["main"]):
        return {}
    tvm_target = target.tvm_target()
    with tvm_target:
        lowered = default_build_pipeline()(mod)
    known = {gv.name_hint for gv in mod.get_global_vars()}
    return {name: _heap_stores(name, func) for name, func in _prim_funcs(lowered)
            if name not in known and func.attrs is not None and "tirx.is_host_func" in func.attrs
            and len(func.params) == 1 and isinstance(func.params[0].ty, tirx.BufferType)}


def _heap_stores(name: str, func) -> dict:
    """A shape function's stores into its heap `H`, each value over `["heap", i]`."""
    import tvm
    import tvm_ffi

    heap = func.params[0]
    stores: list[list] = []

    def leaf(expr):
        if (isinstance(expr, tvm.ir.TensorLoad) and expr.source.same_as(heap) and len(expr.indices) == 1
                and isinstance(expr.indices[0], tvm.tirx.IntImm)):
            return ["heap", int(expr.indices[0].value)]
        raise ScheduleError(f"shape function {name} computes {expr}, which the OpenCL launch table cannot record")

    def on_store(node) -> None:
        if not node.buffer.same_as(heap) or not isinstance(node.indices[0], tvm.tirx.IntImm):
            raise ScheduleError(f"shape function {name} writes {node.buffer.name}, which the OpenCL launch table "
                                f"cannot record")
        stores.append([int(node.indices[0].value), size_expression(node.value, leaf)])

    def on_other(node) -> None:
        raise ScheduleError(f"shape function {name} holds a {type(node).__name__}, which the OpenCL launch table "
                            f"cannot record")

    tvm_ffi.structural_walk(func.body, [(tvm.tirx.BufferStore, on_store), (tvm.tirx.For, on_other),
                                        (tvm.tirx.IfThenElse, on_other), (tvm.tirx.LetStmt, on_other)],
                            order="pre")
    return {"heap": int(heap.shape[0]), "stores": stores}


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
        shapes = shape_functions(mod, target)
        if shapes:
            metadata["shape_functions"] = shapes
    bb = relax.BlockBuilder()
    with bb.function(METADATA_FUNCTION, []):
        bb.emit_func_output(ir.StringImm(json.dumps(metadata, sort_keys=True)))
    mod[gv] = bb.get()[METADATA_FUNCTION]
    return mod
