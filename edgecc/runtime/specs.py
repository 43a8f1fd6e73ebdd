"""What a library takes and returns: input/output specs from its metadata, input checking and
reproducible random inputs; and whether its timings mean anything (an emulated library refuses
to be timed). Shared by the native (`module`) and emulated (`emulated`, `opencl`) runners.

A spec is a dict `{"name", "shape", "dtype"}` as written in the library's `edgecc_metadata`.
A library compiled with symbolic dimensions has text in its shapes ("batch", "seq*2") and a
"dims" entry `{variable: [lowest, highest or null]}`: any input shape that gives each variable
one value within its bounds runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgecc.errors import InputError

__all__ = ["LibrarySpecs", "check_inputs", "concrete_shape", "dim_sizes", "input_sizes", "kernel_for_sizes",
           "random_inputs"]


class LibrarySpecs:
    """Input and output names of a library, from its `inputs`/`outputs` metadata lists."""

    path: str
    inputs: list[dict]
    outputs: list[dict]
    #: the library's metadata (its "dims" bound the symbolic input dimensions)
    metadata: dict = {}
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

    @property
    def dims(self) -> dict[str, list]:
        """Size variable -> [lowest, highest or None] of a library with symbolic input dimensions."""
        return self.metadata.get("dims") or {}

    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """`check_inputs` against this library's specs and dimension bounds."""
        return check_inputs(self.path, self.inputs, inputs, self.dims)

    def random_inputs(self, seed: int = 0, sizes: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
        """Reproducible random inputs of the library's input shapes and dtypes; `sizes` gives the
        symbolic dimensions' values (`dim_sizes` fills in the rest)."""
        sizes = dim_sizes(self.path, self.dims, sizes or {})
        specs = [{**spec, "shape": concrete_shape(spec["shape"], sizes)} for spec in self.inputs]
        return random_inputs(specs, seed)


def dim_sizes(path: str, dims: Mapping[str, Sequence], given: Mapping[str, int]) -> dict[str, int]:
    """A value for every size variable of `dims`: `given` (InputError for an unknown name or a
    value out of bounds), else the variable's lowest value."""
    unknown = sorted(set(given) - set(dims))
    if unknown:
        known = ", ".join(dims) or "none: its shapes are fixed"
        raise InputError(f"{path}: no dimension named '{unknown[0]}' (the library's dimensions: {known})")
    sizes = {}
    for var, (lo, hi) in dims.items():
        value = int(given.get(var, lo))
        if value < lo or (hi is not None and value > hi):
            raise InputError(f"{path}: dimension {var} = {value}, the library allows {_allowed(lo, hi)}")
        sizes[var] = value
    return sizes


def concrete_shape(shape: Sequence, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """A spec's shape with its symbolic dimensions evaluated for `sizes`."""
    from edgecc.ir.dims import evaluate_dim, parse_dim

    return tuple(d if isinstance(d, int) else int(evaluate_dim(parse_dim(d), sizes)) for d in shape)


def input_sizes(specs, arrays) -> dict[str, int]:
    """The value of each size variable that is by itself a dimension of an input (checked inputs)."""
    return {d: size for spec, data in zip(specs, arrays) for d, size in zip(spec["shape"], data.shape)
            if isinstance(d, str) and d.isidentifier()}


def kernel_for_sizes(kernel: dict, sizes: Mapping[str, int]) -> dict:
    """A metadata kernel entry with its FLOPs formula ("256*batch*seq") evaluated for `sizes`."""
    flops = kernel.get("flops")
    if not isinstance(flops, str):
        return kernel
    from edgecc.ir.dims import evaluate_dim, parse_dim

    return {**kernel, "flops": float(evaluate_dim(parse_dim(flops), sizes))}


def _allowed(lo: int, hi: int | None) -> str:
    return f"{lo}..{hi}" if hi is not None else f"{lo} or more"


def check_inputs(path: str, specs, inputs: Mapping[str, np.ndarray],
                 dims: Mapping[str, Sequence] | None = None) -> list[np.ndarray]:
    """The inputs in the model's order, as C-contiguous arrays of its dtypes; InputError for
    missing or unknown names, wrong shapes and dtypes that do not cast safely.

    Symbolic dimensions: each size variable takes one value from the inputs, within its bounds
    in `dims` ({var: [lo, hi or None]}; at least 1 when not given); the error names the input,
    the dimension and the variable."""
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
    arrays = [np.asarray(inputs[spec["name"]]) for spec in specs]
    if any(not isinstance(d, int) for spec in specs for d in spec["shape"]):
        _check_symbolic_shapes(specs, arrays, dims or {})
    return [_checked_array(spec, data) for spec, data in zip(specs, arrays)]


def _check_symbolic_shapes(specs, arrays: list[np.ndarray], dims: Mapping[str, Sequence]) -> None:
    """InputError unless the arrays' shapes give every size variable one value within its bounds
    and match every fixed or computed dimension."""
    from edgecc.ir.dims import evaluate_dim, parse_dim

    seen: dict[str, tuple[int, str, int]] = {}  # var -> (value, input, axis) where it was first read
    for spec, data in zip(specs, arrays):
        name, shape = spec["name"], spec["shape"]
        if data.ndim != len(shape):
            raise InputError(f"input '{name}' has shape {tuple(data.shape)} (rank {data.ndim}), the model expects "
                             f"rank {len(shape)}: ({', '.join(str(d) for d in shape)})")
        for axis, (d, size) in enumerate(zip(shape, data.shape)):
            if isinstance(d, int) or not d.isidentifier():
                continue
            lo, hi = dims.get(d, (1, None))
            if size < lo or (hi is not None and size > hi):
                raise InputError(f"input '{name}' dimension {axis} ({d}) is {size}, the library allows "
                                 f"{_allowed(lo, hi)}")
            if d in seen and seen[d][0] != size:
                value, first, first_axis = seen[d]
                raise InputError(f"input '{name}' dimension {axis} ({d}) is {size}, but input '{first}' "
                                 f"dimension {first_axis} makes {d} = {value}")
            seen.setdefault(d, (size, name, axis))
    sizes = {var: value for var, (value, _, _) in seen.items()}
    for spec, data in zip(specs, arrays):
        for axis, (d, size) in enumerate(zip(spec["shape"], data.shape)):
            expected = d if isinstance(d, int) else evaluate_dim(parse_dim(d), sizes)
            if size != expected:
                formula = "" if isinstance(d, int) or d.isidentifier() else f" ({d})"
                raise InputError(f"input '{spec['name']}' dimension {axis}{formula} is {size}, the model "
                                 f"expects {expected}")


def _checked_array(spec: dict, value) -> np.ndarray:
    data = np.asarray(value)
    if any(not isinstance(d, int) for d in spec["shape"]):
        pass  # checked by _check_symbolic_shapes
    elif tuple(data.shape) != tuple(spec["shape"]):
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
