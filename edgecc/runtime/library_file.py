"""What a built library holds, read from the file without loading it.

TVM's `export_library` embeds the modules a library imports (the Relax VM executable, the GPU
kernels: `opencl` source, `cuda` cubins) in one blob behind the exported symbol
`__tvm_ffi__library_bin`: a uint64 byte count, the import tree (two uint64 vectors), then per
module its kind and, except for the host code itself (`_lib`), its serialized bytes. Reading it
from the ELF file works for a library of any CPU, so this machine can tell an OpenCL or a CUDA
library from a CPU one before trying to load it, and can run an OpenCL library's kernels itself
(`edgecc.runtime.opencl`).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass

from edgecc.errors import InputError

__all__ = ["EmbeddedModule", "OpenCLSource", "embedded_modules", "library_device", "library_metadata", "opencl_source"]

LIBRARY_BIN_SYMBOL = b"__tvm_ffi__library_bin"
#: module kind -> the device its code runs on
DEVICE_OF_KIND = {"opencl": "opencl", "cuda": "cuda"}


@dataclass(frozen=True)
class EmbeddedModule:
    kind: str  # "relax.VMExecutable", "_lib" (the host code), "opencl", "cuda", ...
    data: bytes  # serialized module (empty for "_lib")


class _Reader:
    """Little-endian reads of TVM's serialization (uint64 lengths before strings and vectors)."""

    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise InputError(f"{self.what}: truncated embedded module data")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def bytes(self) -> bytes:
        return self.take(self.u64())

    def str(self) -> str:
        return self.bytes().decode()

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def _elf_symbol_bytes(data: bytes, symbol: bytes) -> int | None:
    """File offset of the data of the dynamic symbol `symbol`, or None."""
    if data[:4] != b"\x7fELF":
        return None
    is64 = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
        sh_fmt, sym_fmt, sym_size = order + "IIQQQQIIQQ", order + "IBBHQQ", 24
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
        sh_fmt, sym_fmt, sym_size = order + "IIIIIIIIII", order + "IIIBBH", 16
    sections = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    for sec in sections:
        if sec[1] != 11:  # SHT_DYNSYM
            continue
        strtab = sections[sec[6]]
        offset, size = sec[4], sec[5]
        for k in range(size // sym_size):
            fields = struct.unpack_from(sym_fmt, data, offset + k * sym_size)
            name_off, value, shndx = (fields[0], fields[4], fields[3]) if is64 else (fields[0], fields[1], fields[5])
            start = strtab[4] + name_off
            if data[start:start + len(symbol) + 1] == symbol + b"\0" and 0 < shndx < len(sections):
                target = sections[shndx]
                return target[4] + (value - target[3])
    return None


def embedded_modules(path: str | os.PathLike) -> list[EmbeddedModule]:
    """The modules embedded in the library at `path`, in the order TVM wrote them ([] if none)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the library ({exc.strerror})") from None
    try:
        offset = _elf_symbol_bytes(data, LIBRARY_BIN_SYMBOL)
        if offset is None:
            return []
        size, = struct.unpack_from("<Q", data, offset)
    except (struct.error, IndexError):
        raise InputError(f"{path}: not a complete shared library (its ELF tables are cut short or damaged)") from None
    reader = _Reader(data[offset + 8:offset + 8 + size], path)
    for _ in range(2):  # the import tree: row pointers and child indices
        reader.take(8 * reader.u64())
    modules = []
    while not reader.done:
        kind = reader.str()
        modules.append(EmbeddedModule(kind, b"" if kind == "_lib" else reader.bytes()))
    return modules


def library_device(path: str | os.PathLike) -> str:
    """Where the library's kernels run: "opencl", "cuda" or "cpu"."""
    for module in embedded_modules(path):
        if module.kind in DEVICE_OF_KIND:
            return DEVICE_OF_KIND[module.kind]
    return "cpu"


def library_metadata(path: str | os.PathLike) -> dict:
    """The library's `edgecc_metadata` JSON, read from its Relax VM executable without loading
    it (a library of any CPU); InputError when the file is not a library built by edgecc."""
    for module in embedded_modules(path):
        if module.kind == "relax.VMExecutable":
            metadata = _metadata_constant(module.data)
            if metadata is not None:
                return metadata
    raise InputError(f"{os.fspath(path)}: not a library built by edgecc")


def _metadata_constant(executable: bytes) -> dict | None:
    """The string constant of the executable (a uint64 byte count, then the bytes) that holds a
    JSON object whose "format" is edgecc's."""
    start = executable.find(b"{")
    while start >= 0:
        size, = struct.unpack_from("<Q", executable, start - 8) if start >= 8 else (0,)
        if 0 < size <= len(executable) - start:
            try:
                value = json.loads(executable[start:start + size])
            except ValueError:
                value = None
            if isinstance(value, dict) and str(value.get("format", "")).startswith("edgecc-"):
                return value
        start = executable.find(b"{", start + 1)
    return None


@dataclass(frozen=True)
class OpenCLSource:
    """An embedded OpenCL module: the program source and its kernels' argument counts."""

    source: str
    arg_counts: dict[str, int]  # device function -> number of arguments


def opencl_source(module: EmbeddedModule, what: str) -> OpenCLSource:
    """Parse TVM's serialized OpenCL module: format, function table, source."""
    reader = _Reader(module.data, what)
    reader.str()  # format ("cl")
    arg_counts = {}
    for _ in range(reader.u64()):
        reader.str()  # key
        name = reader.str()
        arg_counts[name] = reader.u64()
        reader.take(4 * arg_counts[name])  # argument types (DLDataType)
        for _ in range(reader.u64()):  # launch parameter tags
            reader.str()
        reader.take(4 * reader.u64())  # argument extra tags
    source = reader.str()
    if not reader.done:
        raise InputError(f"{what}: unexpected data after the OpenCL source")
    return OpenCLSource(source, arg_counts)
