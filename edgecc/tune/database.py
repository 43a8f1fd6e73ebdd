"""Tuning logs: one folder per target tag, kept as JSON lines that survive a kill.

A folder `tuning_logs/<tag>/` holds four files, each one JSON value per line:

- `database_workload.json`: MetaSchedule workloads, `[structural hash, base64 of the IRModule]`;
- `database_tuning_record.json`: MetaSchedule tuning records, `[workload line, [trace, run_secs,
  target, args_info]]` (the two files are the layout of MetaSchedule's `JSONDatabase`);
- `edgecc_knob_records.json`: measured points of edgecc's own rules, `{"workload", "rule",
  "knobs": {name: value}, "run_secs", "target"}` (absent in logs written before knob search);
- `edgecc_tasks.json`: a header `{"format", "tag", "target"}` on the first line, then one line per
  task event (`{"workload": line, ...}`: its name, kind, FLOPs, the measured time of edgecc's
  default schedule, the tune-time comparison of the best record with the default) and one per
  finished tuning run (`{"run": {model, trials, seconds, ...}}`).

Every line is appended with one write, flushed and fsync'ed before tuning goes on, so a killed
run loses nothing it finished. Reading checks every line: malformed JSON, a truncated last line,
an entry of the wrong shape, a record pointing at a missing workload, or a header of another
format or target tag raise `TuningLogError` naming the file and line. Records are matched by target
as well as workload: a record whose target is not the log's own is never used. Nothing read from a
log is unpickled or evaluated; IR is decoded by TVM's JSON reader only when it is needed.

A log folder of another CPU of the same ISA family (same architecture; every SIMD feature of the
log's CPU present on the compile's) may be opened with `borrow=True`; `borrowed_from` then says
which CPU it was tuned on (`isa_family_mismatch` decides).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgecc.errors import TuningLogError

__all__ = ["FORMAT", "KnobRecord", "Record", "TuningLog", "default_logs_root", "isa_family_mismatch",
           "target_identity", "workload_module"]

FORMAT = "edgecc-tuning-1"
WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"
KNOB_RECORDS = "edgecc_knob_records.json"
TASKS = "edgecc_tasks.json"

#: SIMD features a record may rely on, per architecture (LLVM's names)
_SIMD = {"x86_64": ("sse4.2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                    "avx512vnni", "avxvnni"),
         "aarch64": ("neon", "fullfp16", "dotprod", "i8mm", "sve", "sve2"),
         "arm": ("neon", "vfp4", "fullfp16", "dotprod")}

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


def _mean_secs(secs) -> float:
    secs = [s for s in (secs or []) if isinstance(s, (int, float))]
    return sum(secs) / len(secs) if secs else FAILED


@dataclass
class Record:
    """One measured candidate of one workload."""

    workload: int  # line index in database_workload.json
    order: int  # position among the records of the log (tuning order)
    raw: list  # the MetaSchedule record JSON: [trace, run_secs, target, args_info]
    line: int = 0  # line number in database_tuning_record.json

    kind = "trace"

    @property
    def seconds(self) -> float:
        """Mean measured run time; FAILED when the candidate did not build or run."""
        return _mean_secs(self.raw[1])

    @property
    def valid(self) -> bool:
        return self.seconds < FAILED


@dataclass
class KnobRecord:
    """One measured point of the knob space of edgecc's rule for one workload."""

    workload: int
    rule: str  # the kernel kind whose rule takes the knobs
    knobs: dict  # name -> int, bool or str
    run_secs: list | None
    line: int  # line number in edgecc_knob_records.json

    kind = "knobs"

    @property
    def seconds(self) -> float:
        return _mean_secs(self.run_secs)

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
    knob_records: list = field(default_factory=list)
    lines: dict = field(default_factory=dict)  # file name -> lines read
    compares: list = field(default_factory=list)  # (line number, task entry) of comparisons


class TuningLog:
    """The tuning log of one target: read it, find workloads, append records and task data."""

    def __init__(self, folder: str | os.PathLike, tag: str, target_json: dict, create: bool = False,
                 header_extra: dict | None = None, borrow: bool = False):
        self.folder = Path(folder)
        self.tag = tag
        self.target_json = target_json
        self.identity = target_identity(target_json)
        self.borrow = borrow
        self.borrowed_from: str | None = None  # the tag of another CPU of the same family, when borrowed
        self._mods: dict[int, object] = {}  # decoded workload IRModules
        parsed = self._read() if self.folder.is_dir() and any(self.folder.iterdir()) else None
        if parsed is None:
            parsed = _Parsed(header={"format": FORMAT, "tag": tag, "target": target_json, **(header_extra or {})})
            if create:
                self._create(parsed.header)
        self.header = parsed.header
        self.workloads, self.records = parsed.workloads, parsed.records
        self.tasks, self.foreign, self.runs = parsed.tasks, parsed.foreign, parsed.runs
        self.knob_records = parsed.knob_records
        self._line_counts = {RECORDS: parsed.lines.get(RECORDS, 0), KNOB_RECORDS: parsed.lines.get(KNOB_RECORDS, 0)}
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
                   header_extra: dict | None = None, borrow: bool = False) -> TuningLog:
        """The log of `target` (an edgecc Target) under `root` (default: the committed tuning_logs/).

        `root` may also be a target's own folder (the one holding edgecc_tasks.json); it must then
        be the folder of this target's tag or, with `borrow`, of a CPU of the same ISA family.
        """
        root = Path(root) if root else default_logs_root()
        folder = root if (root / TASKS).is_file() else root / target.tag
        from tvm.s_tir.meta_schedule.utils import _json_de_tvm

        return cls(folder, target.tag, _json_de_tvm(target.tvm_target().export()), create=create,
                   header_extra=header_extra, borrow=borrow)

    def _create(self, header: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _append(self.folder / TASKS, header)
        for name in (WORKLOADS, RECORDS, KNOB_RECORDS):
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
            parsed.lines[RECORDS] = lineno
        if (self.folder / KNOB_RECORDS).exists():  # logs written before knob search have none
            for lineno, entry in _lines(self.folder / KNOB_RECORDS):
                self._read_knob_record(self.folder / KNOB_RECORDS, lineno, entry, parsed)
                parsed.lines[KNOB_RECORDS] = lineno
        for lineno, entry in parsed.compares:
            kind, line = entry["compare"]["record"]
            name = RECORDS if kind == "trace" else KNOB_RECORDS
            if not 1 <= line <= parsed.lines.get(name, 0):
                raise TuningLogError(f"{tasks_path}:{lineno}: comparison with line {line} of {name}, "
                                     f"which has {parsed.lines.get(name, 0)} lines")
        return parsed

    def _check_header(self, path: Path, entry) -> dict:
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            raise TuningLogError(f"{path}:1: not an edgecc tuning log (expected format '{FORMAT}')")
        identity = target_identity(entry.get("target") or {}) if isinstance(entry.get("target"), dict) else {}
        if entry.get("tag") == self.tag and identity == self.identity:
            return entry
        mismatch = isa_family_mismatch(identity, self.identity) if self.borrow else "another target"
        if mismatch is None:
            self.borrowed_from, self.identity = str(entry.get("tag")), identity
            return entry
        raise TuningLogError(f"{path}: tuning records for target '{entry.get('tag')}' ({identity}), not "
                             f"'{self.tag}' ({self.identity}): {mismatch}")

    @staticmethod
    def _read_task(path: Path, lineno: int, entry, parsed: _Parsed) -> None:
        if isinstance(entry, dict) and isinstance(entry.get("run"), dict):
            parsed.runs.append(entry["run"])
            return
        if not (isinstance(entry, dict) and isinstance(entry.get("workload"), int)):
            raise TuningLogError(f"{path}:{lineno}: not a task entry")
        if "compare" in entry:
            if not _is_comparison(entry["compare"]):
                raise TuningLogError(f"{path}:{lineno}: not a comparison of a record with the default schedule")
            parsed.compares.append((lineno, entry))
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
        parsed.records.append(Record(entry[0], len(parsed.records), entry[1], lineno))

    def _read_knob_record(self, path: Path, lineno: int, entry, parsed: _Parsed) -> None:
        if not _is_knob_record(entry):
            raise TuningLogError(f"{path}:{lineno}: not a knob record (expected {{workload, rule, knobs, "
                                 f"run_secs, target}} with int, bool or string knob values)")
        if not 0 <= entry["workload"] < len(parsed.workloads):
            raise TuningLogError(f"{path}:{lineno}: record of workload {entry['workload']}, which "
                                 f"{self.folder / WORKLOADS} does not have")
        if target_identity(entry["target"]) != self.identity:
            parsed.foreign += 1
            return
        parsed.knob_records.append(KnobRecord(entry["workload"], entry["rule"], entry["knobs"], entry["run_secs"],
                                              lineno))

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

    def knob_records_of(self, workload: int) -> list[KnobRecord]:
        return [r for r in self.knob_records if r.workload == workload]

    def best(self, workload: int) -> Record | None:
        """The fastest MetaSchedule record of a workload."""
        valid = [r for r in self.records_of(workload) if r.valid]
        return min(valid, key=lambda r: r.seconds) if valid else None

    def best_knobs(self, workload: int) -> KnobRecord | None:
        """The fastest knob record of a workload."""
        valid = [r for r in self.knob_records_of(workload) if r.valid]
        return min(valid, key=lambda r: r.seconds) if valid else None

    def best_any(self, workload: int) -> Record | KnobRecord | None:
        """The fastest record of either kind, as measured during the search."""
        found = [r for r in (self.best(workload), self.best_knobs(workload)) if r is not None]
        return min(found, key=lambda r: r.seconds) if found else None

    def record_at(self, kind: str, line: int) -> Record | KnobRecord | None:
        """The record of this log's target at `line` of the file of `kind` ("trace", "knobs")."""
        records = self.records if kind == "trace" else self.knob_records
        return next((r for r in records if r.line == line), None)

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
        self._line_counts[RECORDS] += 1
        record = Record(workload, len(self.records), raw, self._line_counts[RECORDS])
        self.records.append(record)
        return record

    def add_knob_record(self, workload: int, rule: str, knobs: dict, run_secs: list | None) -> KnobRecord:
        """Append one measured knob point of a workload (run_secs None: it did not build or run)."""
        entry = {"workload": workload, "rule": rule, "knobs": knobs, "run_secs": run_secs, "target": self.target_json}
        if not _is_knob_record(entry):
            raise ValueError(f"not a knob record: {entry}")
        _append(self.folder / KNOB_RECORDS, entry)
        self._line_counts[KNOB_RECORDS] += 1
        record = KnobRecord(workload, rule, dict(knobs), run_secs, self._line_counts[KNOB_RECORDS])
        self.knob_records.append(record)
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


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_knob_record(entry) -> bool:
    return (isinstance(entry, dict) and set(entry) == {"workload", "rule", "knobs", "run_secs", "target"}
            and isinstance(entry["workload"], int) and not isinstance(entry["workload"], bool)
            and isinstance(entry["rule"], str) and isinstance(entry["target"], dict)
            and isinstance(entry["knobs"], dict)
            and all(isinstance(k, str) and isinstance(v, (int, str)) for k, v in entry["knobs"].items())
            and (entry["run_secs"] is None
                 or (isinstance(entry["run_secs"], list) and all(_is_number(x) for x in entry["run_secs"]))))


def _is_comparison(entry) -> bool:
    """{"record": [kind, line], "default": [secs], "candidate": [secs], "noise": x, "wins": bool}"""
    return (isinstance(entry, dict) and isinstance(entry.get("record"), list) and len(entry["record"]) == 2
            and entry["record"][0] in ("trace", "knobs") and isinstance(entry["record"][1], int)
            and not isinstance(entry["record"][1], bool)
            and all(isinstance(entry.get(k), list) and all(_is_number(x) for x in entry[k])
                    for k in ("default", "candidate"))
            and _is_number(entry.get("noise")) and isinstance(entry.get("wins"), bool))


def _arch(identity: dict) -> str:
    triple = identity.get("mtriple") or "x86_64"
    return "aarch64" if triple.startswith("aarch64") else "arm" if triple.startswith("arm") else triple.split("-")[0]


def _simd_features(identity: dict) -> set[str]:
    """The SIMD features (LLVM names) of a target identity's CPU and attributes."""
    import tvm
    from tvm.target import codegen

    spec = {k: v for k, v in identity.items() if k in ("kind", "mtriple", "mcpu", "mattr")}
    features = {str(f) for f in codegen.llvm_get_cpu_features(tvm.target.Target(spec))}
    return features & set(_SIMD.get(_arch(identity), ()))


def isa_family_mismatch(log_identity: dict, target_identity_: dict) -> str | None:
    """Why records tuned for `log_identity` may not run on `target_identity_`, or None when the two
    CPUs are of the same ISA family: same kind and architecture, and every SIMD feature of the
    log's CPU present on the target's."""
    if log_identity.get("kind") != target_identity_.get("kind") or _arch(log_identity) != _arch(target_identity_):
        return (f"another instruction set ({log_identity.get('kind')} {_arch(log_identity)}, not "
                f"{target_identity_.get('kind')} {_arch(target_identity_)})")
    if log_identity.get("kind") != "llvm":
        return "another device"
    missing = sorted(_simd_features(log_identity) - _simd_features(target_identity_))
    if missing:
        return f"another ISA family (the log's CPU has {', '.join(missing)}, this target's does not)"
    return None


def isa_family_name(identity: dict) -> str:
    """The architecture and SIMD features of a target identity, for messages ("x86_64: avx, avx2, fma")."""
    features = [f for f in _SIMD.get(_arch(identity), ()) if f in _simd_features(identity)]
    return f"{_arch(identity)}: {', '.join(features) or 'no SIMD'}"


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
