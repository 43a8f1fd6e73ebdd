"""Value types of the edgecc IR: element type, static shape, layout and quantization."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .dims import Dim, dim_vars, is_static, parse_dim
from .errors import IRError

__all__ = [
    "DTYPES", "Dim", "QuantParams", "TensorType", "parse_dim", "dtype_short", "dtype_from_short", "format_number", "format_type",
    "np_dtype",
]

#: element types the IR knows, with the short names the text form uses
DTYPES = {
    "float32": "f32",
    "float16": "f16",
    "float64": "f64",
    "bfloat16": "bf16",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "uint16": "u16",
    "uint32": "u32",
    "uint64": "u64",
    "bool": "bool",
}
_SHORT_TO_DTYPE = {short: name for name, short in DTYPES.items()}


def dtype_short(dtype: str) -> str:
    """`float32` -> `f32`."""
    return DTYPES[dtype]


def dtype_from_short(short: str) -> str:
    """`f32` -> `float32`; raises KeyError for an unknown name."""
    return _SHORT_TO_DTYPE[short]


def np_dtype(dtype: str) -> np.dtype:
    """The numpy dtype of an IR dtype name."""
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point).

    `axis` is None for per-tensor parameters, else the channel axis of per-channel ones.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self):
        if len(self.scale) != len(self.zero_point):
            raise ValueError("quantization scale and zero point differ in length")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor quantization takes one scale")

    @property
    def per_channel(self) -> bool:
        return self.axis is not None


class TypeValueError(IRError, ValueError):
    """A dtype or shape no tensor can have (an IRError, so a model asking for one is a user error)."""


@dataclass(frozen=True)
class TensorType:
    """A tensor type. Each dimension is an int or a `Dim`, a formula over named size variables
    that the run time fixes (`f32[batch,seq,768]`).

    `layout` names the dimension order when it matters (`NCHW`, `NHWC`, `NCHW8c`);
    None means the plain order the model was written in.
    """

    dtype: str
    shape: tuple[int, ...]
    layout: str | None = None
    quant: QuantParams | None = field(default=None)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise TypeValueError(f"unknown dtype {self.dtype!r}")
        object.__setattr__(self, "shape", tuple(d if isinstance(d, Dim) else int(d) for d in self.shape))
        if any(d < 0 for d in self.shape if not isinstance(d, Dim)):
            raise TypeValueError(f"negative dimension in shape {self.shape}")

    @property
    def is_static(self) -> bool:
        """Whether every dimension is a plain int."""
        return is_static(self.shape)

    @property
    def dim_vars(self) -> frozenset[str]:
        """The size variables the shape mentions."""
        return dim_vars(self.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int | Dim:
        return math.prod(self.shape)  # exact: a hostile shape must not wrap around

    @property
    def nbytes(self) -> int | Dim:
        return self.size * np_dtype(self.dtype).itemsize

    def with_shape(self, shape) -> TensorType:
        return replace(self, shape=tuple(shape))

    def with_dtype(self, dtype: str) -> TensorType:
        return replace(self, dtype=dtype)

    def with_layout(self, layout: str | None) -> TensorType:
        return replace(self, layout=layout)

    def with_quant(self, quant: QuantParams | None) -> TensorType:
        return replace(self, quant=quant)

    def __str__(self) -> str:
        return format_type(self)


# ----- the text form of types (the printer and parser use it) ---------------------------------------
def format_number(x) -> str:
    """A number as the text form writes it (float32 values in their shortest exact form)."""
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, np.float32):
        text = np.format_float_positional(x, unique=True, trim="0")
        return text if ("." in text or "e" in text or "n" in text) else text + ".0"
    f = float(x)
    if f != f or f in (float("inf"), float("-inf")):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}[repr(f)]
    return repr(f)


def _quant_text(q: QuantParams) -> str:
    parts = []
    if q.axis is not None:
        parts.append(f"axis={q.axis}")
    parts.append("scale=[" + ",".join(format_number(np.float32(s)) for s in q.scale) + "]")
    parts.append("zp=[" + ",".join(str(z) for z in q.zero_point) + "]")
    return "q:" + ",".join(parts)


def format_type(t: TensorType) -> str:
    """`f32[1,8,56,56,8]<NCHW8c>`, `i8[4]<q:scale=[0.1],zp=[0]>`, `f32[batch,seq*12]`."""
    text = f"{DTYPES[t.dtype]}[{','.join(str(d) for d in t.shape)}]"
    extras = []
    if t.layout:
        extras.append(t.layout)
    if t.quant is not None:
        extras.append(_quant_text(t.quant))
    if extras:
        text += "<" + ";".join(extras) + ">"
    return text
