"""Converters for If, Scan and Loop (inlined or unrolled) and the Optional ops (an optional is its tensor)."""

from __future__ import annotations

import numpy as np

from edgecc.ir.limits import check_count

from . import converter
from .checks import count
from ._util import stack, take


@converter("If", since=1)
def _if(ctx, inputs, attrs):
    """A branch known at compile time is inlined; otherwise both branches run and `where` picks,
    which needs outputs of one shape and type on both sides."""
    from edgecc.ir import static_value

    cond = static_value(inputs[0])
    if cond is not None:
        branch = attrs["then_branch"] if bool(cond.reshape(-1)[0]) else attrs["else_branch"]
        return ctx.convert_subgraph(branch, {})
    then_out = ctx.convert_subgraph(attrs["then_branch"], {})
    else_out = ctx.convert_subgraph(attrs["else_branch"], {})
    flag = ctx.emit("reshape", inputs[0], shape=())
    outs = []
    for a, b in zip(then_out, else_out):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ctx.unsupported(f"a run-time condition with branches of different types ({a.type} and {b.type})")
        outs.append(ctx.emit("where", flag, a, b))
    return outs


@converter("Scan", since=9, checks={"num_scan_inputs": count()})
def _scan(ctx, inputs, attrs):
    body = attrs["body"]
    n_scan = attrs["num_scan_inputs"]
    if n_scan > len(inputs):
        raise ctx.fail(f"attribute num_scan_inputs={n_scan} but the node has {len(inputs)} inputs")
    states, scans = list(inputs[:len(inputs) - n_scan]), list(inputs[len(inputs) - n_scan:])
    in_axes = list(attrs.get("scan_input_axes", [0] * n_scan))
    in_dirs = list(attrs.get("scan_input_directions", [0] * n_scan))
    n_out = len(body.output) - len(states)
    out_axes = list(attrs.get("scan_output_axes", [0] * n_out))
    out_dirs = list(attrs.get("scan_output_directions", [0] * n_out))
    in_axes = [a % x.type.rank for a, x in zip(in_axes, scans)]
    steps = scans[0].shape[in_axes[0]]
    if any(x.shape[a] != steps for x, a in zip(scans, in_axes)):
        raise ctx.fail("scan inputs differ in length")
    check_count(f"{ctx.where}: iterations", steps, "unroll")
    names = [i.name for i in body.input]
    collected = [[] for _ in range(n_out)]
    for t in range(steps):
        bound = dict(zip(names, states))
        for name, x, axis, reverse in zip(names[len(states):], scans, in_axes, in_dirs):
            bound[name] = take(ctx, x, axis, steps - 1 - t if reverse else t)
        outs = ctx.convert_subgraph(body, bound)
        states = outs[:len(states)]
        for acc, value in zip(collected, outs[len(states):]):
            acc.append(value)
    results = list(states)
    for acc, axis, reverse in zip(collected, out_axes, out_dirs):
        if not acc:
            raise ctx.unsupported("a scan of length 0")
        if reverse:
            acc = acc[::-1]
        results.append(stack(ctx, acc, axis % (acc[0].type.rank + 1)))
    return results


@converter("Loop", since=1)
def _loop(ctx, inputs, attrs):
    """Unrolled: the trip count and every condition must be known at compile time."""
    from edgecc.ir import static_value

    body = attrs["body"]
    trip = static_value(inputs[0]) if inputs[0] is not None else None
    cond = inputs[1] if len(inputs) > 1 else None
    carried = list(inputs[2:])
    if inputs[0] is not None and trip is None:
        raise ctx.fail("the trip count must be known at compile time")
    limit = int(trip.reshape(-1)[0]) if trip is not None else None
    names = [i.name for i in body.input]
    n_scan = len(body.output) - 1 - len(carried)
    collected = [[] for _ in range(n_scan)]
    i = 0
    while True:
        if limit is not None and i >= limit:
            break
        if cond is not None:
            flag = static_value(cond)
            if flag is None:
                raise ctx.fail("the loop condition must be known at compile time")
            if not bool(flag.reshape(-1)[0]):
                break
        check_count(f"{ctx.where}: iterations", i + 1, "unroll")
        bound = {names[0]: ctx.const(np.array(i, np.int64), "iteration")}
        if len(names) > 1:
            bound[names[1]] = cond if cond is not None else ctx.const(np.array(True), "cond")
        bound.update(zip(names[2:], carried))
        outs = ctx.convert_subgraph(body, bound)
        cond = outs[0]
        carried = outs[1:1 + len(carried)]
        for acc, value in zip(collected, outs[1 + len(carried):]):
            acc.append(value)
        i += 1
    results = list(carried)
    for acc in collected:
        if not acc:
            raise ctx.unsupported("a loop that runs no iteration and has scan outputs")
        results.append(stack(ctx, acc, 0))
    return results


@converter("OptionalHasElement", since=15)
def _optional_has_element(ctx, inputs, attrs):
    present = bool(inputs) and inputs[0] is not None
    return ctx.const(np.array(present), ctx.node.output[0])


@converter("OptionalGetElement", "Optional", since=15)
def _optional_get_element(ctx, inputs, attrs):
    if not inputs or inputs[0] is None:
        raise ctx.unsupported("an empty optional")
    return ctx.emit("identity", inputs[0])
