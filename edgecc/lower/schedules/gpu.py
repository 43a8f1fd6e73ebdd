"""Rule-based default schedules for GPU kernels (CUDA and OpenCL alike): the "gpu" rule set.

TVM's DLight rules are the floor: convolutions and matrix products go to its `Matmul` rule (an
implicit GEMM over NCHW with shared-memory tiles; the cheap stages around them, padding, bias,
activations, residual adds, stay fused in the same kernel), row reductions (softmax, layer norm)
to `Reduction`/`GeneralReduction`, and any kernel to `Fallback` (every spatial loop bound to
blocks and threads). Where DLight is weak, edgecc's own rule takes over: depthwise convolutions
and pooling, whose reductions are a few taps per output, get one thread per output element with
the taps summed in a register (DLight would spread nine taps over a thread block). A kernel
built as one opaque loop nest (a TE extern: TOPI's scan for CumSum) runs on a single GPU thread.

The rules take symbolic extents (a batch or sequence length known at run time): DLight's rules
are written for them, and edgecc's split their fused loops into blocks of a fixed thread count,
the grid size an expression of the sizes and the last block guarded.

A rule returns a PrimFunc whose every loop nest is bound to `blockIdx`/`threadIdx`; lowering
checks that (`edgecc.lower.device.check_thread_binding`).
"""

from __future__ import annotations

from . import RULE_ATTR, RuleDoesNotApply, register_rule

#: threads per block of the thread-per-output rule (a multiple of every GPU's warp or wavefront)
THREADS_PER_OUTPUT_BLOCK = 128


def _dlight_rules(*names: str) -> list:
    from tvm.s_tir.dlight import gpu

    return [getattr(gpu, name)() for name in names]


def apply_dlight(kernel, target, rule_names: tuple[str, ...]):
    """The kernel scheduled by the first of DLight's GPU rules `rule_names` that takes it and binds
    all of it to GPU threads. RuleDoesNotApply when none does; a rule that raises is skipped, and
    so is a cross-thread reduction TVM cannot lower (a reducer it does not recognize: max with
    edgecc's -inf identity, an arg-reduction)."""
    from ..device import unbound_blocks

    tvm_target = target.tvm_target()
    with tvm_target:
        for name, rule in zip(rule_names, _dlight_rules(*rule_names)):
            try:
                space = rule.apply(kernel.func, tvm_target, False)
            except Exception:  # noqa: BLE001 - DLight rules raise on shapes they do not expect: try the next
                continue
            if space is None:
                continue
            func = (space[0] if isinstance(space, list) else space).mod["main"]
            if not unbound_blocks(func) and _cross_thread_reductions_lower(func):
                return func.with_attr(RULE_ATTR, f"dlight.{name}")
    raise RuleDoesNotApply(f"no DLight rule of {', '.join(rule_names)} takes {kernel.name}")


def _cross_thread_reductions_lower(func) -> bool:
    """Whether TVM's lowering of cross-thread reductions takes `func` (it raises at build time on a
    reduction whose combiner and identity it does not match to a known reducer)."""
    import tvm

    try:
        tvm.s_tir.transform.LowerCrossThreadReduction()(tvm.IRModule({"main": func}))
    except Exception:  # noqa: BLE001 - TVM raises ValueError or TVMError
        return False
    return True


@register_rule("conv", "dense", "matmul", rules="gpu")
def schedule_gemm(kernel, target):
    """Convolutions (as implicit GEMMs) and matrix products with their epilogues fused."""
    try:
        return apply_dlight(kernel, target, ("Matmul", "GEMV", "LowBatchGEMV", "Reduction"))
    except RuleDoesNotApply:
        return schedule_thread_per_output(kernel, target)


@register_rule("depthwise_conv", "pool", rules="gpu")
def schedule_thread_per_output(kernel, target):
    """One thread per output element; the reduction's few taps summed serially in that thread."""
    import tvm

    from .cpu import _blocks, _has_reduction, _is_output, inline_all_but

    sch = tvm.s_tir.Schedule(kernel.func)
    inline_all_but(sch, [b for b in _blocks(sch) if _has_reduction(sch, b)])
    blocks = _blocks(sch)
    outputs = [b for b in blocks if _is_output(sch, b)]
    reductions = [b for b in blocks if _has_reduction(sch, b)]
    if len(outputs) != 1 or len(reductions) > 1 or len(blocks) > 2:
        raise ValueError(f"thread-per-output rule needs one output and at most one reduction, got "
                         f"{len(blocks)} blocks")
    out = outputs[0]
    threads = min(THREADS_PER_OUTPUT_BLOCK, target.max_threads_per_block)
    thread_loop = _bind_spatial(sch, out, threads)
    for block in reductions:
        if not sch.get(block).same_as(sch.get(out)):
            sch.compute_at(block, thread_loop)
            for index in range(len(sch.get(block).writes)):  # arg-reductions keep two running values
                sch.set_scope(block, index, "local")  # the running sum lives in the thread's registers
    return sch.mod["main"].with_attr(RULE_ATTR, "edgecc.thread_per_output")


def _bind_spatial(sch, block, threads: int):
    """Fuse the block's leading spatial loops, split them into blocks of `threads` and bind them;
    returns the thread loop."""
    from tvm.tirx import IterVar

    loops = sch.get_loops(block)
    spatial = []
    for loop, iv in zip(loops, sch.get(block).iter_vars):
        if iv.iter_type != IterVar.DataPar:
            break
        spatial.append(loop)
    if not spatial:
        raise ValueError("no spatial loop to bind to GPU threads")
    fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    bx, tx = sch.split(fused, [None, threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return tx


@register_rule("reduction", rules="gpu")
def schedule_row_reduction(kernel, target):
    """Softmax, layer norm and other row reductions: a thread block per row where DLight's row
    rules take the kernel, else one thread per output, else one thread per row in each stage."""
    try:
        return apply_dlight(kernel, target, ("RMSNorm", "Reduction", "GeneralReduction"))
    except RuleDoesNotApply:
        pass
    try:
        return schedule_thread_per_output(kernel, target)
    except ValueError:  # several reduction stages (softmax): each stage one thread per row
        return schedule_every_block(kernel, target)


@register_rule("injective", "*", rules="gpu")
def schedule_any(kernel, target):
    """Elementwise and data-movement kernels, and any kernel no other rule takes: DLight's
    `Transpose` where it fits, else `Fallback`, else every block on threads of its own."""
    try:
        return apply_dlight(kernel, target, ("Transpose", "Fallback"))
    except RuleDoesNotApply:
        pass
    if _has_opaque_block(kernel.func):
        return schedule_single_thread(kernel, target)
    return schedule_every_block(kernel, target)


def schedule_every_block(kernel, target):
    """Inline what can be inlined, then bind each remaining block's spatial loops to threads (one
    launch per block; a reduction's own loops run inside its thread)."""
    import tvm

    from .cpu import _blocks, _has_reduction, inline_all_but

    sch = tvm.s_tir.Schedule(kernel.func)
    inline_all_but(sch, [b for b in _blocks(sch) if _has_reduction(sch, b)])
    threads = min(THREADS_PER_OUTPUT_BLOCK, target.max_threads_per_block)
    for block in _blocks(sch):
        _bind_spatial(sch, block, threads)
    return sch.mod["main"].with_attr(RULE_ATTR, "edgecc.every_block")


def _has_opaque_block(func) -> bool:
    import tvm

    from .symbolic import _has_opaque_block as has_opaque

    return has_opaque(tvm.s_tir.Schedule(func))


def schedule_single_thread(kernel, target):
    """A kernel that is one opaque loop nest (a TE extern, sequential by nature: a scan) on one
    GPU thread of one block; its loops run serially there. ValueError for an extern that calls a
    host function (TOPI's CPU sort behind TopK): it cannot run on a GPU."""
    from tvm import ir, s_tir, tirx

    from ..device import host_calls

    calls = host_calls(kernel.func)
    if calls:
        raise ValueError(f"{kernel.name} calls the host function {calls[0]}, which cannot run on a GPU")
    body = kernel.func.body
    for tag in ("threadIdx.x", "blockIdx.x"):
        var = tirx.Var(tag.replace(".", "_"), "int32")
        thread = tirx.IterVar(ir.Range(0, 1), var, tirx.IterVar.ThreadIndex, tag)
        body = tirx.For(var, 0, 1, tirx.ForKind.THREAD_BINDING, body, thread_binding=thread)
    root = s_tir.stmt.SBlockRealize([], True, s_tir.stmt.SBlock([], [], [], "root", body))
    return kernel.func.with_body(root).with_attr(RULE_ATTR, "edgecc.single_thread")

