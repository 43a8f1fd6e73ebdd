"""What a library takes and returns: input/output specs from its metadata, input checking and
reproducible random inputs; and whether its timings mean anything (an emulated library refuses
to be timed). Shared by the native (`module`) and emulated (`emulated`, `opencl`) runners.

A spec is a dict `{"name", "shape", "dtype"}` as written in the library's `edgecc_metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgecc.errors import InputError

__all__ = ["LibrarySpecs", "check_inputs", "random_inputs"]


class LibrarySpecs:
    """Input and output names of a library, from its `inputs`/`outputs` metadata lists."""

    path: str
    inputs: list[dict]
    outputs: list[dict]
    #: whether some of the library runs emulated here (qemu-user, PoCL, LiteRT for NPU regions),
    #: and how, in a phrase that ends with "here" or names the stand-in
    emulated: bool = False
    emulation_note: str | None = None

    def refuse_emulated_timing(self, what: str) -> None:
        """InputError when the library runs emulated: its timings say nothing about the board."""
        if self.emulated:
            raise InputError(f"{self.path}: {what} refused: {self.emulation_note}, whose timings say nothing "
                             f"about the board")

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Reproducible random inputs of the library's input shapes and dtypes."""
        return random_inputs(self.inputs, seed)


def check_inputs(path: str, specs, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The inputs in the model's order, as C-contiguous arrays of its dtypes; InputError for
    missing or unknown names, wrong shapes and dtypes that do not cast safely."""
    names = [spec["name"] for spec in specs]
    missing = [n for n in names if n not in inputs]
    extra = sorted(set(inputs) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing input " + ", ".join(f"'{m}'" for m in missing))
        if extra:
            parts.append("unknown input " + ", ".join(f"'{e}'" for e in extra))
        raise InputError(f"{path}: {'; '.join(parts)} (the model takes {', '.join(names)})")
    return [_checked_array(spec, inputs[spec["name"]]) for spec in specs]


def _checked_array(spec: dict, value) -> np.ndarray:
    data = np.asarray(value)
    if tuple(data.shape) != tuple(spec["shape"]):
        raise InputError(f"input '{spec['name']}' has shape {tuple(data.shape)}, "
                         f"the model expects {tuple(spec['shape'])}")
    if str(data.dtype) != spec["dtype"]:
        if not np.can_cast(data.dtype, spec["dtype"], casting="same_kind"):
            raise InputError(f"input '{spec['name']}' has dtype {data.dtype}, the model expects {spec['dtype']}")
        data = data.astype(spec["dtype"])
    return np.require(data, requirements="C")


def random_inputs(specs, seed: int = 0, integer_high: int = 10) -> dict[str, np.ndarray]:
    """Reproducible random inputs for specs ({name, shape, dtype}): standard normal floats,
    integers in [0, integer_high) (1 gives zeros, which keep index inputs in range), random booleans."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in specs:
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        if dtype == np.bool_:
            out[spec["name"]] = rng.random(shape) > 0.5
        elif np.issubdtype(dtype, np.integer):
            out[spec["name"]] = rng.integers(0, integer_high, size=shape).astype(dtype)
        else:
            out[spec["name"]] = rng.standard_normal(shape).astype(dtype)
    return out
