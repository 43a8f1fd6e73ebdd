"""Running a library's NPU regions on this machine: LiteRT's int8 reference kernels.

A library built for an NPU target calls `edgecc.npu_region(key, inputs..., outputs...)` for each
region (`edgecc.lower.npu`). No Ethos-U simulator exists here, so the region's reference TFLite
model (the exact input Vela compiled) runs on LiteRT, whose int8 kernels are what Ethos-U is
specified to match: `run_region` for a library loaded in this process (`ensure_region_function`),
and `serve_region_requests` for an AArch64 library's runner under qemu-user, which sends each
region call to this process through a pipe (`edgecc.runtime.emulated`; the runner's side is
`runtime/deploy/npu_host.h`). On the board the runner gives the NPU model to the NPU's
TensorFlow Lite delegate instead (`runtime/deploy/npu_tflite.h`).
"""

from __future__ import annotations

import base64

from edgecc.errors import ToolchainError

__all__ = ["EMULATION_NOTE", "NPU_REGION_FUNCTION", "ensure_region_function", "library_npu_metadata", "register_regions",
           "run_region", "serve_region_requests"]

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


def _loaded_interpreter(key: str):
    interp = _INTERPRETERS.get(key)
    if interp is None:
        raise RuntimeError(f"NPU region {key} was not loaded with its library")
    return interp


def run_region(key: str, inputs: list) -> list:
    """Run a registered region on LiteRT: numpy arrays in and out, in the region model's order."""
    interp = _loaded_interpreter(key)
    for detail, data in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], data)
    interp.invoke()
    return [interp.get_tensor(detail["index"]) for detail in interp.get_output_details()]


def _run_region(key: str, *tensors) -> None:
    count = len(_loaded_interpreter(key).get_input_details())
    results = run_region(key, [t.numpy() for t in tensors[:count]])
    for tensor, result in zip(tensors[count:], results):
        tensor.copyfrom(result)


def _read_tensor(requests, detail) -> "np.ndarray":
    import numpy as np

    nbytes = int(requests.readline())
    data = requests.read(nbytes)
    if len(data) != nbytes:
        raise EOFError("the runner's region call is truncated")
    array = np.frombuffer(data, dtype=detail["dtype"])
    if array.size != int(np.prod(detail["shape"])):
        raise ValueError(f"an input of {nbytes} bytes for a {detail['dtype'].__name__}{list(detail['shape'])} tensor")
    return array.reshape(detail["shape"])


def _answer_region_call(request: str, requests) -> bytes:
    """The answer to one "run KEY N_INPUTS N_OUTPUTS" request, whose input tensors follow it."""
    _, key, n_inputs, n_outputs = request.split()
    interp = _INTERPRETERS.get(key)
    if interp is None:
        for _ in range(int(n_inputs)):  # read past the inputs to stay in step
            requests.read(int(requests.readline()))
        return f"error NPU region {key} was not loaded with its library\n".encode()
    inputs = [_read_tensor(requests, d) for d in interp.get_input_details()[:int(n_inputs)]]
    try:
        outputs = run_region(key, inputs)
    except Exception as exc:  # noqa: BLE001 - LiteRT's message goes back to the runner
        return f"error LiteRT: {' '.join(str(exc).split())}\n".encode()
    if len(outputs) != int(n_outputs):
        return f"error NPU region {key} has {len(outputs)} outputs, the library passes {n_outputs}\n".encode()
    return b"ok\n" + b"".join(f"{o.nbytes}\n".encode() + o.tobytes() for o in outputs)


def serve_region_requests(requests, responses) -> None:
    """Answer a runner's region calls until it closes its end (protocol: runtime/deploy/npu_host.h).

    `requests` and `responses` are binary files (pipes); the regions must be registered."""
    while request := requests.readline():
        answer = _answer_region_call(request.decode(), requests)
        try:
            responses.write(answer)
            responses.flush()
        except BrokenPipeError:  # the runner has died; its exit status and stderr tell why
            return


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
