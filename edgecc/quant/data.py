"""Calibration samples: read, check against the model's inputs, split into feeds.

Accepted sources:
  * an .npz file with one array per model input, named by input (for a one-input model any
    single array name will do);
  * a folder of .npy files (one-input models) or .npz files (one array per input), read in name order;
  * in Python, a mapping input name -> array, or a list of such mappings.
An array holds one sample (the input's shape), a stack of samples (S, *shape), or samples joined
along the batch axis (S * batch, *shape[1:]). Floating-point data of another width is converted;
any other dtype mismatch, a shape that fits none of these forms, or no sample at all is a
CalibrationError that names the file and the input.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from edgecc.errors import CalibrationError

__all__ = ["load_calibration", "input_specs"]


def input_specs(graph) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of each model input, by the names the compiled library uses."""
    names = graph.meta.get("input_names") or [v.name for v in graph.inputs]
    return [(n, tuple(v.type.shape), v.type.dtype) for n, v in zip(names, graph.inputs)]


def _describe(shape, dtype) -> str:
    return f"{dtype}[{','.join(str(d) for d in shape)}]"


def _fits(actual: tuple[int, ...], shape: tuple) -> bool:
    """Whether an array shape fits a model input's: equal sizes, any size for a symbolic
    dimension (the compiled library checks its bounds when the sample runs)."""
    return len(actual) == len(shape) and all(not isinstance(d, int) or a == d for a, d in zip(actual, shape))


def _split(array: np.ndarray, name: str, shape: tuple[int, ...], dtype: str, where: str) -> list[np.ndarray]:
    """One input's array -> list of samples of exactly `shape` and `dtype`."""
    array = np.asarray(array)
    want = np.dtype(dtype)
    if array.dtype != want:
        same_kind = (array.dtype.kind == "f" and want.kind == "f") or (
            array.dtype.kind in "iu" and want.kind in "iu" and np.can_cast(array.dtype, want, "same_kind"))
        if not same_kind:
            raise CalibrationError(f"{where}: input '{name}' has dtype {array.dtype}, the model takes {dtype}")
        array = array.astype(want)
    if _fits(array.shape, shape):
        return [array]
    if array.ndim == len(shape) + 1 and _fits(array.shape[1:], shape):
        return [array[i] for i in range(array.shape[0])]
    batch = shape[0] if shape and isinstance(shape[0], int) else 0
    if (shape and array.ndim == len(shape) and _fits(array.shape[1:], shape[1:]) and batch > 0
            and array.shape[0] % batch == 0 and array.shape[0] > 0):
        return [array[i:i + batch] for i in range(0, array.shape[0], batch)]
    raise CalibrationError(
        f"{where}: input '{name}' has shape {tuple(array.shape)}, which fits neither the model input "
        f"{_describe(shape, dtype)} nor a stack (S, {', '.join(str(d) for d in shape)}) of samples")


def _feeds_from_mapping(data: Mapping[str, np.ndarray], specs, where: str) -> list[dict[str, np.ndarray]]:
    keys = list(data.keys())
    if not keys:
        raise CalibrationError(f"{where}: holds no arrays")
    if len(specs) == 1 and len(keys) == 1:
        arrays = {specs[0][0]: data[keys[0]]}
    else:
        missing = [n for n, _, _ in specs if n not in data]
        if missing:
            raise CalibrationError(f"{where}: no array for model input(s) {', '.join(missing)} "
                                   f"(it has {', '.join(keys)})")
        arrays = {n: data[n] for n, _, _ in specs}
    per_input = {n: _split(arrays[n], n, s, d, where) for n, s, d in specs}
    counts = {n: len(v) for n, v in per_input.items()}
    if len(set(counts.values())) > 1:
        raise CalibrationError(f"{where}: inputs hold different numbers of samples ({counts})")
    count = next(iter(counts.values()))
    return [{n: per_input[n][i] for n in per_input} for i in range(count)]


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise CalibrationError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _read_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CalibrationError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def load_calibration(source, graph, max_samples: int | None = None) -> list[dict[str, np.ndarray]]:
    """Calibration feeds (input name -> array of the input's shape) for `graph`."""
    specs = input_specs(graph)
    if isinstance(source, (str, os.PathLike)):
        feeds = _load_path(os.fspath(source), specs)
    elif isinstance(source, Mapping):
        feeds = _feeds_from_mapping(source, specs, "calibration data")
    elif isinstance(source, Sequence) and not isinstance(source, (bytes, str)):
        feeds = []
        for i, item in enumerate(source):
            if not isinstance(item, Mapping):
                raise CalibrationError(f"calibration sample {i} is not a mapping of input name to array")
            feeds += _feeds_from_mapping(item, specs, f"calibration sample {i}")
    else:
        raise CalibrationError(f"calibration data must be a path, a mapping or a list of mappings, "
                               f"got {type(source).__name__}")
    if not feeds:
        raise CalibrationError("calibration data holds no sample")
    return feeds[:max_samples] if max_samples else feeds


def _load_path(path: str, specs) -> list[dict[str, np.ndarray]]:
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith((".npy", ".npz")))
        if not files:
            raise CalibrationError(f"{path}: folder has no .npy or .npz files")
        feeds = []
        for name in files:
            full = os.path.join(path, name)
            if name.endswith(".npz"):
                feeds += _feeds_from_mapping(_read_npz(full), specs, full)
            else:
                if len(specs) != 1:
                    raise CalibrationError(f"{full}: a .npy file holds one input, the model takes "
                                           f"{len(specs)} ({', '.join(n for n, _, _ in specs)}); use .npz files")
                feeds += _feeds_from_mapping({specs[0][0]: _read_npy(full)}, specs, full)
        return feeds
    if not os.path.exists(path):
        raise CalibrationError(f"{path}: no such file or folder")
    if path.endswith(".npy"):
        if len(specs) != 1:
            raise CalibrationError(f"{path}: a .npy file holds one input, the model takes {len(specs)}")
        return _feeds_from_mapping({specs[0][0]: _read_npy(path)}, specs, path)
    return _feeds_from_mapping(_read_npz(path), specs, path)
