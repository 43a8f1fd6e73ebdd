"""Lowering of winograd_conv: F(m x m, 3 x 3) in NCHW{b}c as four stages.

    pad              (N, C/ib, nH*m + 2, nW*m + 2, ib)   the input, padded to whole tiles
    winograd_input   V[a, b, C/ib, P, ib]   = B^T d B per tile (P = N * nH * nW tiles)
    winograd_gemm    M[a, b, O/ob, P, ob]   = sum over input channels of V * U (one GEMM per a, b)
    winograd_output  Y[N, O/ob, OH, OW, ob] = A^T M A per tile

Each transform is two stages, rows then columns (`winograd_input_rows` holds B^T d,
`winograd_output_rows` A^T M), written out with their constant coefficients and zero terms left
out: once the schedule unrolls a tile's entries, each `Select` on the entry index folds to one
short sum. The block names are what the schedule in
edgecc/lower/schedules/winograd.py looks for.
"""

from __future__ import annotations

from tvm import te, tirx, topi

from edgecc.ir.ops.winograd import winograd_matrices

from . import lowering
from .shapes import shape_of


def _combination(coefs, terms, dtype):
    """sum(c * t) over the nonzero coefficients; +-1 without a multiplication."""
    total = None
    for c, t in zip(coefs, terms):
        if c == 0:
            continue
        c = float(c)
        term = t if c == 1 else (-t if c == -1 else t * tirx.const(c, dtype))
        total = term if total is None else total + term
    return total if total is not None else tirx.const(0.0, dtype)


def _select(index, options):
    """options[index] for a loop index that the schedule unrolls."""
    expr = options[-1]
    for k in range(len(options) - 2, -1, -1):
        expr = tirx.Select(index == k, options[k], expr)
    return expr


def _transform(matrix, read, dtype):
    """Entry k of matrix @ x, as a select on k: options[k] = sum_r matrix[k, r] * read(r)."""
    def entry(k):
        return _select(k, [_combination(row, [read(r) for r in range(len(row))], dtype) for row in matrix])

    return entry


def winograd_conv2d_nchwc(data, weight, m: int, pads):
    """data (N, C/ib, H, W, ib), weight (alpha, alpha, O/ob, C/ib, ib, ob) -> (N, O/ob, OH, OW, ob)."""
    n, cc, h, w, ib = shape_of(data)
    alpha, _, oc, _, _, ob = shape_of(weight)
    top, left, bottom, right = pads
    oh, ow = h + top + bottom - 2, w + left + right - 2
    nh, nw = -(-oh // m), -(-ow // m)
    tiles = n * nh * nw
    bt, _, at = winograd_matrices(m)
    dtype = str(data.dtype)
    padded = topi.nn.pad(data, (0, 0, top, left, 0),
                         (0, 0, nh * m + 2 - h - top, nw * m + 2 - w - left, 0), name="pad")

    def tile_rows(a, s, c, p, i):  # (B^T d)[a, s]
        batch, th, tw = p // (nh * nw), p // nw % nh, p % nw
        return _transform(bt, lambda r: padded[batch, c, th * m + r, tw * m + s, i], dtype)(a)

    rows = te.compute((alpha, alpha, cc, tiles, ib), tile_rows, name="winograd_input_rows")
    v = te.compute((alpha, alpha, cc, tiles, ib),  # (B^T d B)[a, b]
                   lambda a, b, c, p, i: _transform(bt, lambda s: rows[a, s, c, p, i], dtype)(b),
                   name="winograd_input")
    rc = te.reduce_axis((0, cc), name="rc")
    ri = te.reduce_axis((0, ib), name="ri")
    product = te.compute(
        (alpha, alpha, oc, tiles, ob),
        lambda a, b, o, p, j: te.sum(v[a, b, rc, p, ri] * weight[a, b, o, rc, ri, j], axis=[rc, ri]),
        name="winograd_gemm",
    )
    out_rows = te.compute((m, alpha, oc, tiles, ob),  # (A^T M)[y, s]
                          lambda y, s, o, p, j: _transform(at, lambda r: product[r, s, o, p, j], dtype)(y),
                          name="winograd_output_rows")

    def output_pixel(bn, o, y, x, j):  # (A^T M A)[y % m, x % m] of tile (y // m, x // m)
        p = (bn * nh + y // m) * nw + x // m
        return _transform(at, lambda s: out_rows[y % m, s, o, p, j], dtype)(x % m)

    return te.compute((n, oc, oh, ow, ob), output_pixel, name="winograd_output")


@lowering("winograd_conv")
def lower_winograd_conv(node, ins):
    data, weight, bias = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    out = winograd_conv2d_nchwc(data, weight, node.attrs["tile"], tuple(node.attrs["pads"]))
    if bias is not None:
        out = te.compute(out.shape, lambda n, c, y, x, b: out[n, c, y, x, b] + bias[0, c, 0, 0, b], name="bias_add")
    return [out]
