"""Software prefetch: fetch a block of weights into cache while the block before it is in use.

A kernel that reads its weights block by block, and uses each block for a while from cache
(a weights-first convolution uses one input-channel block of 3x3 weights, 36 KiB, for every
output pixel), reads each new block in one burst that the hardware prefetchers do not run ahead
of: inside a whole model the weights come from memory, not from the cache they sit in when the
kernel is timed alone (ResNet-18's 7x7x512 convolutions: 0.91 ms alone, 1.5 ms in the model).
`prefetch_next_block` spreads prefetches of the next block's cache lines over the iterations
that use the current one, so the next block is in cache when its turn comes.

TIR's schedule has no prefetch primitive; the prefetches are `llvm.prefetch` calls inserted
at the top of a loop body of the scheduled function, into L2 (`LOCALITY`).
A prefetch is a hint: it changes no value and never faults.
"""

from __future__ import annotations

__all__ = ["CACHE_LINE_BYTES", "prefetch_next_block", "unflatten"]

#: bytes per cache line on the CPUs edgecc targets (x86-64, Arm Cortex-A)
CACHE_LINE_BYTES = 64
#: llvm.prefetch locality: 2 fetches into L2 (x86 `prefetcht1`, AArch64 `prfm pldl2keep`), so the
#: next block does not push the block in use out of L1 (ResNet-18's 7x7x512 convs in the model:
#: 1.04 ms into L1, 0.96 ms into L2)
LOCALITY = 2


def prefetch_next_block(func, at, buffer, block_index: list, whole_dims: int, uses: list):
    """`func` with a prefetch of `buffer[*block_index, ...]` (the last `whole_dims` dimensions
    whole, one contiguous block) at the top of the body of the loop whose variable is `at`.

    `uses` lists the (loop variable, extent) pairs, outermost first, whose iterations run before
    the block is needed (the loop over `at` last); each iteration prefetches its share of the
    block's lines.
    """
    import tvm
    from tvm import tirx

    inner = [int(d) for d in buffer.shape[-whole_dims:]]
    per_line = max(CACHE_LINE_BYTES // (tvm.DataType(buffer.dtype).bits // 8), 1)
    lines = -(-_product(inner) // per_line)
    step, steps = uses[0]
    for var, extent in uses[1:]:  # the iteration's number, 0 to steps - 1
        step, steps = step * extent + var, steps * extent
    share = -(-lines // steps)

    def prefetches():
        j = tirx.Var("line", "int32")
        offset = tirx.min(step * share + j, lines - 1) * per_line
        index = [*block_index, *unflatten(offset, inner)]
        address = tirx.call_intrin("handle", "tirx.address_of", tirx.BufferLoad(buffer, index))
        call = tirx.call_llvm_intrin("void", "llvm.prefetch.p0", address, tirx.const(0, "int32"),
                                     tirx.const(LOCALITY, "int32"), tirx.const(1, "int32"))  # read, locality, data
        return tirx.For(j, 0, share, tirx.ForKind.UNROLLED, tirx.Evaluate(call))

    body, found = _insert_at_top(func.body, at, prefetches)
    if not found:
        raise ValueError(f"no loop over {at} in {func}")
    return func.with_body(body)


def unflatten(flat, dims: list[int]) -> list:
    """The indices, over dimensions `dims` (row-major), of element number `flat` (an expression)."""
    return [flat // _product(dims[i + 1:]) % d for i, d in enumerate(dims)]


def _product(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _insert_at_top(stmt, var, make):
    """(stmt with `make()` before the body of the loop over `var`, whether that loop was found)."""
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock, SBlockRealize

    if isinstance(stmt, tirx.For):
        if stmt.loop_var.same_as(var):
            body, found = tirx.SeqStmt([make(), stmt.body]), True
        else:
            body, found = _insert_at_top(stmt.body, var, make)
        if not found:
            return stmt, False
        return tirx.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind, body, stmt.thread_binding,
                        stmt.annotations, stmt.step), True
    if isinstance(stmt, tirx.SeqStmt):
        parts, found = [], False
        for part in stmt.seq:
            new, hit = (part, False) if found else _insert_at_top(part, var, make)
            parts.append(new)
            found = found or hit
        return (tirx.SeqStmt(parts), True) if found else (stmt, False)
    if isinstance(stmt, SBlockRealize):
        block, found = _insert_at_top(stmt.block, var, make)
        return (SBlockRealize(stmt.iter_values, stmt.predicate, block), True) if found else (stmt, False)
    if isinstance(stmt, SBlock):
        body, found = _insert_at_top(stmt.body, var, make)
        if not found:
            return stmt, False
        return SBlock(stmt.iter_vars, stmt.reads, stmt.writes, stmt.name_hint, body, stmt.init,
                      stmt.alloc_buffers, stmt.match_buffers, stmt.annotations), True
    return stmt, False
