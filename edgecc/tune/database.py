"""Tuning logs: one folder per target tag, kept as JSON lines that survive a kill.

A folder `tuning_logs/<tag>/` holds three files, each one JSON value per line:

- `database_workload.json`: MetaSchedule workloads, `[structural hash, base64 of the IRModule]`;
- `database_tuning_record.json`: MetaSchedule tuning records, `[workload line, [trace, run_secs,
  target, args_info]]` (the two files are the layout of MetaSchedule's `JSONDatabase`);
- `edgecc_tasks.json`: a header `{"format", "tag", "target"}` on the first line, then one line per
  task event (`{"workload": line, ...}`: its name, kind, FLOPs, the measured time of edgecc's
  default schedule) and one per finished tuning run (`{"run": {model, trials, seconds, ...}}`).

Every line is appended with one write, flushed and fsync'ed before tuning goes on, so a killed
run loses nothing it finished. Reading checks every line: malformed JSON, a truncated last line,
an entry of the wrong shape, a record pointing at a missing workload, or a header of another
format or target tag raise `TuningLogError` naming the file and line. Records are matched by target
as well as workload: a record whose target is not the log's own is never used. Nothing read from a
log is unpickled or evaluated; IR is decoded by TVM's JSON reader only when it is needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgecc.errors import TuningLogError

__all__ = ["FORMAT", "Record", "TuningLog", "default_logs_root", "target_identity", "workload_module"]

FORMAT = "edgecc-tuning-1"
WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
TASKS = "edgecc_tasks.json"

#: the TVM target fields that decide what code runs where (thread counts and keys do not)
_IDENTITY_KEYS = ("kind", "mtriple", "mcpu", "march", "mattr", "mabi", "arch", "device", "model")

#: run time given to candidates that failed to build or run
FAILED = 1e10


def workload_module(func):
    """The IRModule MetaSchedule tunes for a kernel's PrimFunc: the function as `main`, so
    kernels that differ only in their symbol name share a workload."""
    import tvm

    func = func.with_attr("global_symbol", "main").with_attr("tirx.noalias", True)
    return tvm.IRModule({"main": func})


def default_logs_root() -> Path:
    """The committed `tuning_logs/` folder of the edgecc source tree."""
    return Path(__file__).resolve().parents[2] / "tuning_logs"


def target_identity(target_json: dict) -> dict:
    """The fields of a TVM target (as a JSON dict) that a tuning record is only valid for."""
    out = {}
    for key in _IDENTITY_KEYS:
        value = target_json.get(key)
        if value not in (None, "", [], {}):
            out[key] = sorted(value) if isinstance(value, list) else value
    return out


@dataclass
class Record:
    """One measured candidate of one workload."""

    workload: int  # line index in database_workload.json
    order: int  # position among the records of the log (tuning order)
    raw: list  # the MetaSchedule record JSON: [trace, run_secs, target, args_info]

    @property
    def seconds(self) -> float:
        """Mean measured run time; FAILED when the candidate did not build or run."""
        secs = [s for s in (self.raw[1] or []) if isinstance(s, (int, float))]
        return sum(secs) / len(secs) if secs else FAILED

    @property
    def valid(self) -> bool:
        return self.seconds < FAILED


@dataclass
class _Parsed:
    workloads: list = field(default_factory=list)
    records: list = field(default_factory=list)
    tasks: dict = field(default_factory=dict)
    header: dict | None = None
    foreign: int = 0  # records of another target, skipped
    runs: list = field(default_factory=list)  # one entry per tuning run: model, options, seconds


class TuningLog:
    """The tuning log of one target: read it, find workloads, append records and task data."""

    def __init__(self, folder: str | os.PathLike, tag: str, target_json: dict, create: bool = False,
                 header_extra: dict | None = None):
        self.folder = Path(folder)
        self.tag = tag
        self.target_json = target_json
        self.identity = target_identity(target_json)
        self._mods: dict[int, object] = {}  # decoded workload IRModules
        parsed = self._read() if self.folder.is_dir() and any(self.folder.iterdir()) else None
        if parsed is None:
            parsed = _Parsed(header={"format": FORMAT, "tag": tag, "target": target_json, **(header_extra or {})})
            if create:
                self._create(parsed.header)
        self.header = parsed.header
        self.workloads, self.records = parsed.workloads, parsed.records
        self.tasks, self.foreign, self.runs = parsed.tasks, parsed.foreign, parsed.runs
        self._by_hash: dict[str, list[int]] = {}
        for i, (shash, _) in enumerate(self.workloads):
            self._by_hash.setdefault(shash, []).append(i)

    # ----- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | os.PathLike) -> TuningLog:
        """An existing log folder, for whatever target its header names."""
        path = Path(folder) / TASKS
        if not path.is_file():
            raise TuningLogError(f"{folder}: not a tuning log folder (no {TASKS}; pass tuning_logs/<target tag>)")
        for _, entry in _lines(path):
            if not isinstance(entry, dict) or entry.get("format") != FORMAT:
                raise TuningLogError(f"{path}:1: not an edgecc tuning log (expected format '{FORMAT}')")
            return cls(folder, str(entry.get("tag")), entry.get("target") or {})
        raise TuningLogError(f"{path}: empty (no header line)")

    @classmethod
    def for_target(cls, target, root: str | os.PathLike | None = None, create: bool = False,
                   header_extra: dict | None = None) -> TuningLog:
        """The log of `target` (an edgecc Target) under `root` (default: the committed tuning_logs/).

        `root` may also be a target's own folder (the one holding edgecc_tasks.json); it must then
        be the folder of this target's tag.
        """
        root = Path(root) if root else default_logs_root()
        folder = root if (root / TASKS).is_file() else root / target.tag
        from tvm.s_tir.meta_schedule.utils import _json_de_tvm

        return cls(folder, target.tag, _json_de_tvm(target.tvm_target().export()), create=create,
                   header_extra=header_extra)

    def _create(self, header: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _append(self.folder / TASKS, header)
        for name in (WORKLOADS, RECORDS):
            (self.folder / name).touch()

    # ----- reading ------------------------------------------------------------------------------
    def _read(self) -> _Parsed:
        parsed = _Parsed()
        tasks_path = self.folder / TASKS
        if not tasks_path.is_file():
            raise TuningLogError(f"{self.folder}: not an edgecc tuning log (no {TASKS})")
        for lineno, entry in _lines(tasks_path):
            if lineno == 1:
                parsed.header = self._check_header(tasks_path, entry)
            else:
                self._read_task(tasks_path, lineno, entry, parsed)
        for lineno, entry in _lines(self.folder / WORKLOADS):
            if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
                raise TuningLogError(f"{self.folder / WORKLOADS}:{lineno}: not a workload entry")
            parsed.workloads.append(entry)
        for lineno, entry in _lines(self.folder / RECORDS):
            self._read_record(self.folder / RECORDS, lineno, entry, parsed)
        return parsed

    def _check_header(self, path: Path, entry) -> dict:
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            raise TuningLogError(f"{path}:1: not an edgecc tuning log (expected format '{FORMAT}')")
        if entry.get("tag") != self.tag or target_identity(entry.get("target") or {}) != self.identity:
            raise TuningLogError(f"{path}: tuning records for target '{entry.get('tag')}' "
                                 f"({target_identity(entry.get('target') or {})}), not '{self.tag}' "
                                 f"({self.identity})")
        return entry

    @staticmethod
    def _read_task(path: Path, lineno: int, entry, parsed: _Parsed) -> None:
        if isinstance(entry, dict) and isinstance(entry.get("run"), dict):
            parsed.runs.append(entry["run"])
            return
        if not (isinstance(entry, dict) and isinstance(entry.get("workload"), int)):
            raise TuningLogError(f"{path}:{lineno}: not a task entry")
        parsed.tasks.setdefault(entry["workload"], {}).update(entry)

    def _read_record(self, path: Path, lineno: int, entry, parsed: _Parsed) -> None:
        ok = (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
              and isinstance(entry[1], list) and len(entry[1]) == 4 and isinstance(entry[1][0], list)
              and (entry[1][1] is None or isinstance(entry[1][1], list)))
        if not ok:
            raise TuningLogError(f"{path}:{lineno}: not a tuning record")
        if not 0 <= entry[0] < len(parsed.workloads):
            raise TuningLogError(f"{path}:{lineno}: record of workload {entry[0]}, which "
                                 f"{self.folder / WORKLOADS} does not have")
        if not isinstance(entry[1][2], dict) or target_identity(entry[1][2]) != self.identity:
            parsed.foreign += 1
            return
        parsed.records.append(Record(entry[0], len(parsed.records), entry[1]))

    # ----- queries ------------------------------------------------------------------------------
    def find_workload(self, mod) -> int | None:
        """The workload line of an IRModule (structural hash, then structural equality)."""
        import tvm_ffi

        shash = _workload_json(mod)[0]
        for index in self._by_hash.get(shash, []):
            if tvm_ffi.structural_equal(self.workload_module(index), mod):
                return index
        return None

    def workload_module(self, index: int):
        """The IRModule of a workload line, decoded by TVM."""
        if index not in self._mods:
            from tvm.s_tir.meta_schedule.database import Workload

            try:
                self._mods[index] = Workload.from_json(self.workloads[index]).mod
            except Exception as exc:  # noqa: BLE001 - TVM's decoder raises several kinds
                raise TuningLogError(f"{self.folder / WORKLOADS}:{index + 1}: undecodable workload "
                                     f"({str(exc).strip().splitlines()[-1][:120]})") from None
        return self._mods[index]

    def records_of(self, workload: int) -> list[Record]:
        return [r for r in self.records if r.workload == workload]

    def best(self, workload: int) -> Record | None:
        valid = [r for r in self.records_of(workload) if r.valid]
        return min(valid, key=lambda r: r.seconds) if valid else None

    def task(self, workload: int) -> dict:
        return self.tasks.get(workload, {})

    def trace_of(self, record: Record):
        """The record's schedule trace as a TVM Trace (with its sampling decisions)."""
        from tvm.s_tir.meta_schedule.database import TuningRecord, Workload

        workload = Workload(self.workload_module(record.workload))
        try:
            return TuningRecord.from_json(record.raw, workload).trace
        except Exception as exc:  # noqa: BLE001
            raise TuningLogError(f"{self.folder / RECORDS}: record {record.order + 1} of workload "
                                 f"{record.workload}: undecodable trace ({str(exc).strip()[:120]})") from None

    # ----- writing ------------------------------------------------------------------------------
    def add_workload(self, mod) -> int:
        """The workload line of `mod`, appended to the log if it is new."""
        index = self.find_workload(mod)
        if index is not None:
            return index
        entry = _workload_json(mod)
        _append(self.folder / WORKLOADS, entry)
        index = len(self.workloads)
        self.workloads.append(entry)
        self._mods[index] = mod
        self._by_hash.setdefault(entry[0], []).append(index)
        return index

    def add_record(self, workload: int, raw: list) -> Record:
        """Append one measured candidate (MetaSchedule record JSON) of a workload."""
        _append(self.folder / RECORDS, [workload, raw])
        record = Record(workload, len(self.records), raw)
        self.records.append(record)
        return record

    def add_run(self, **data) -> None:
        """Append a tuning run's summary (model, trial budget, new candidates, seconds)."""
        _append(self.folder / TASKS, {"run": data})
        self.runs.append(data)

    def update_task(self, workload: int, **data) -> None:
        """Append task data (name, kind, FLOPs, default-schedule time, ...) for a workload."""
        entry = {"workload": workload, **data}
        _append(self.folder / TASKS, entry)
        self.tasks.setdefault(workload, {}).update(entry)


def _workload_json(mod) -> list:
    from tvm.s_tir.meta_schedule.database import Workload

    return list(Workload(mod).as_json())


def _lines(path: Path):
    """(line number, parsed JSON) for each line of a JSON-lines file; errors name file and line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise TuningLogError(f"{path}: missing (a tuning log folder needs {WORKLOADS}, {RECORDS} "
                             f"and {TASKS})") from None
    except UnicodeDecodeError as exc:
        raise TuningLogError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise TuningLogError(f"{path}:{len(lines)}: truncated last line (no newline at the end)")
    for lineno, line in enumerate(lines[:-1], start=1):
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise TuningLogError(f"{path}:{lineno}: corrupt JSON ({exc.msg} at column {exc.colno})") from None


def _append(path: Path, entry) -> None:
    """Append one JSON line with a single write, then flush it to disk."""
    data = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
