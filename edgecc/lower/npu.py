"""NPU regions in the Relax module: one call of the packed function `edgecc.npu_region` each.

A region's compiled form (`edgecc.targets.npu.CompiledRegion`, kept in
`graph.meta["npu_regions"]`) is embedded in the library's metadata under "npu": per region its
key, ops, MACs, the NPU compiler's estimates, the reference TFLite model and the NPU model, both
base64. The call passes the key first, then the inputs, then the outputs (destination passing);
4-D tensors cross the call as NHWC (the Relax code transposes them). `edgecc.runtime.npu`
provides the function when the library is loaded.
"""

from __future__ import annotations

import base64
import hashlib

from edgecc.runtime.npu import NPU_REGION_FUNCTION

__all__ = ["emit_npu_region", "npu_metadata"]
_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def region_key(region) -> str:
    return hashlib.sha256(region.reference).hexdigest()[:24]


def emit_npu_region(bb, node, args, region) -> list:
    """Emit the call of `node`'s region; returns the Relax values of its outputs."""
    from tvm import ir, relax

    args = [bb.emit(relax.op.permute_dims(a, _TO_NHWC)) if nhwc else a
            for a, nhwc in zip(args, region.nhwc_inputs)]
    out_types = []
    for v, nhwc in zip(node.outputs, region.nhwc_outputs):
        shape = [v.type.shape[i] for i in _TO_NHWC] if nhwc else list(v.type.shape)
        out_types.append(relax.TensorType(shape, v.type.dtype))
    call = relax.call_dps_packed(NPU_REGION_FUNCTION, [ir.StringImm(region_key(region)), *args],
                                 out_types if len(out_types) > 1 else out_types[0])
    result = bb.emit(call)
    outs = [result] if len(out_types) == 1 else [bb.emit(relax.TupleGetItem(result, i)) for i in range(len(out_types))]
    return [bb.emit(relax.op.permute_dims(o, _TO_NCHW)) if nhwc else o for o, nhwc in zip(outs, region.nhwc_outputs)]


def npu_metadata(graph) -> dict | None:
    """The "npu" entry of the library metadata for the regions `graph` calls (None: no region)."""
    regions = graph.meta.get("npu_regions") or {}
    used = [n.attrs["region"] for n in graph.nodes if n.op == "npu_region"]
    if not used:
        return None
    entries = []
    for name in used:
        r = regions[name]
        entries.append({"name": name, "key": region_key(r), "backend": r.backend, "ops": r.ops, "macs": r.macs,
                        "estimates": r.estimates, "nhwc_inputs": r.nhwc_inputs, "nhwc_outputs": r.nhwc_outputs,
                        "reference_tflite": base64.b64encode(r.reference).decode(),
                        "npu_model": base64.b64encode(r.npu_model).decode()})
    return {"backend": entries[0]["backend"], "regions": entries,
            "cpu_ops": [list(x) for x in graph.meta.get("npu_cpu_ops", [])],
            "cpu_macs": graph.meta.get("npu_cpu_macs", 0)}
