"""The store on disk: a directory of point records (one JSON file per finished point, the ground truth),
sweep.json describing the sweep, and a lock that keeps two drivers from writing to one store."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
import uuid
import warnings

from .. import io

SCHEMA = "flowtools.sweep/1"


class Store:
    """A store directory: its point records under points/, one file per finished point, and its lock."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.points = self.path / "points"

    def record_path(self, index: int) -> pathlib.Path:
        return self.points / f"{index:07d}.json"

    def finished(self) -> dict[int, pathlib.Path]:
        if not self.points.is_dir():
            return {}
        out = {}
        for p in self.points.glob("[0-9]*.json"):
            with contextlib.suppress(ValueError):
                out[int(p.stem)] = p
        return out

    def read(self, warn: bool = True) -> tuple[dict[int, dict], dict[int, tuple[pathlib.Path, str]]]:
        """(records, damaged): the readable, valid records by index, and (path, reason) for the others.
        Each damaged record is reported by a `DamagedRecordWarning` naming its file."""
        records, damaged = {}, {}
        for index, path in sorted(self.finished().items()):
            rec, reason = _read_record(path)
            if reason is None:
                records[index] = rec
            else:
                damaged[index] = (path, reason)
                if warn:
                    warnings.warn(f"{os.fspath(path)}: damaged point record ({reason}); the point counts as "
                                  "not finished (a resume runs it again; `flowtools check STORE "
                                  "--quarantine` moves the file aside).", DamagedRecordWarning, stacklevel=3)
        return records, damaged

    @contextlib.contextmanager
    def lock(self):
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fh = open(self.path / ".lock", "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RuntimeError(f"another sweep is writing to store={os.fspath(self.path)!r}; wait for it "
                               "or use another store.") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


class DamagedRecordWarning(UserWarning):
    """A point record that cannot be read or lacks a required field; the point counts as not finished."""


#: Fields every point record holds, and their JSON types.
_RECORD_FIELDS = dict(config=dict, seed=int, version=str, outcomes=dict)


def _record_problem(rec) -> str | None:
    """Why `rec` is not a valid point record (None if it is)."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    for name, kind in _RECORD_FIELDS.items():
        if name not in rec:
            return f"no {name!r} field"
        if not isinstance(rec[name], kind) or isinstance(rec[name], bool):
            return f"{name!r} is a {type(rec[name]).__name__}, not a {kind.__name__}"
    if not isinstance(rec["outcomes"].get("status"), str):
        return "no 'status' in its outcomes"
    if rec["config"].get("seed") != rec["seed"]:
        return "its 'seed' differs from its configuration's"
    if rec.get("itinerary") is not None and not isinstance(rec["itinerary"], list):
        return "'itinerary' is not a list"
    graph = rec.get("graph")
    if graph is not None and not (isinstance(graph, dict) and isinstance(graph.get("nodes"), list)
                                  and isinstance(graph.get("links"), list)):
        return "'graph' is not node-link JSON"
    return None


def _read_record(path) -> tuple[dict | None, str | None]:
    """(record, None), or (None, why it is damaged)."""
    try:
        rec = io.read_json(path)
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable: {exc}"
    except (json.JSONDecodeError, io.FileFormatError) as exc:
        return None, f"not valid JSON: {exc}"
    reason = _record_problem(rec)
    return (None, reason) if reason else (rec, None)


def load_record(store, index: int) -> dict:
    """The record of one finished point: config, seed, version, outcomes, itinerary, graph.

    **Raises:** `FileNotFoundError` for a point without a record, `ValueError` naming the file for a
    damaged one."""
    path = Store(store).record_path(int(index))
    if not path.exists():
        raise FileNotFoundError(f"point {index} of store={os.fspath(store)!r} has not finished.")
    rec, reason = _read_record(path)
    if reason is not None:
        raise ValueError(f"{os.fspath(path)} is a damaged point record ({reason}); rerun the point with "
                         "--resume, or move it aside with `flowtools check STORE --quarantine`.")
    return rec


def check_store(store, *, quarantine: bool = False) -> list[tuple[pathlib.Path, str]]:
    """The damaged point records of `store`: (path, reason) for each record that cannot be read or lacks
    a required field (config, seed, version, outcomes with a status). With `quarantine=True` each is
    moved into `store`/quarantine/ (the returned paths are then the new ones), so that the store reads
    cleanly and a resume runs those points again."""
    st = Store(store)
    if not (st.path / "sweep.json").exists():
        sweep_spec(store, "store")  # raises: not a store
    with st.lock() if quarantine else contextlib.nullcontext():
        _, damaged = st.read(warn=False)
        out = []
        for path, reason in damaged.values():
            if quarantine:
                folder = st.path / "quarantine"
                folder.mkdir(exist_ok=True)
                target = folder / path.name
                if target.exists():
                    target = folder / f"{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}"
                os.replace(path, target)
                path = target
            out.append((path, reason))
    return out


def sweep_spec(store, name: str) -> dict:
    """The sweep.json of `store` (its task and configurations); `name` is the argument named in errors."""
    path = Store(store).path / "sweep.json"
    if not path.exists():
        raise FileNotFoundError(f"{name}={os.fspath(store)!r} is not a sweep store (no sweep.json); give the "
                                "folder passed to flowtools.sweep as its store.")
    try:
        spec = io.read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, io.FileFormatError) as exc:
        raise ValueError(f"{os.fspath(path)} cannot be read ({exc}); it describes the sweep, so restore it "
                         "from the sweep's configuration.") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("configurations"), list) or "task" not in spec:
        raise ValueError(f"{os.fspath(path)} lacks the sweep's task or configurations; restore it from the "
                         "sweep's configuration.")
    return spec


def now() -> str:
    """The current UTC time, ISO 8601 to the second: the stamp of sweep.json and of each Dataset."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
