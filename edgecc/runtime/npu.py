"""Running a library's NPU regions on this machine: LiteRT's int8 reference kernels.

A library built for an NPU target calls `edgecc.npu_region(key, inputs..., outputs...)` for each
region (`edgecc.lower.npu`). No Ethos-U simulator exists here, so the function runs the region's
reference TFLite model (the exact input Vela compiled) with LiteRT, whose int8 kernels are what
Ethos-U is specified to match. On the board the same call goes to the NPU model instead.
"""

from __future__ import annotations

import base64

from edgecc.errors import ToolchainError

__all__ = ["EMULATION_NOTE", "NPU_REGION_FUNCTION", "ensure_region_function", "library_npu_metadata", "register_regions"]

#: the packed function a library calls for each NPU region: (region key, inputs..., outputs...)
NPU_REGION_FUNCTION = "edgecc.npu_region"
EMULATION_NOTE = "NPU regions run on LiteRT's int8 reference kernels here (no Ethos-U on this machine)"
_INTERPRETERS: dict[str, object] = {}  # region key -> LiteRT interpreter, shared by every loaded library
_REGISTERED = False


def _interpreter(reference: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ToolchainError("running NPU regions here needs LiteRT: pip install -e '.[npu]' "
                             "(ethos-u-vela, ai-edge-litert)") from None
    interp = Interpreter(model_content=reference, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


def _run_region(key: str, *tensors) -> None:
    interp = _INTERPRETERS.get(key)
    if interp is None:
        raise RuntimeError(f"NPU region {key} was not loaded with its library")
    inputs, outputs = interp.get_input_details(), interp.get_output_details()
    for detail, tensor in zip(inputs, tensors[:len(inputs)]):
        interp.set_tensor(detail["index"], tensor.numpy())
    interp.invoke()
    for detail, tensor in zip(outputs, tensors[len(inputs):]):
        tensor.copyfrom(interp.get_tensor(detail["index"]))


def ensure_region_function() -> None:
    """Register `edgecc.npu_region` (the VM looks its packed functions up when it starts)."""
    global _REGISTERED
    if not _REGISTERED:
        import tvm

        tvm.register_global_func(NPU_REGION_FUNCTION, _run_region, override=True)
        _REGISTERED = True


def register_regions(npu: dict) -> str:
    """Make the regions of a library's metadata "npu" entry callable; returns the note to show."""
    for region in npu["regions"]:
        if region["key"] not in _INTERPRETERS:
            _INTERPRETERS[region["key"]] = _interpreter(base64.b64decode(region["reference_tflite"]))
    return EMULATION_NOTE


def library_npu_metadata(path: str) -> dict | None:
    """The "npu" entry of a library's metadata read from the file without loading it (any CPU
    architecture): None when the library has no NPU regions; InputError when the file is not a
    library built by edgecc."""
    from .library_file import library_metadata

    return library_metadata(path).get("npu")
