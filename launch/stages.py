"""A pipeline's stages: each entry point call composed from its config, run once, reused while its fingerprint holds.

A finished stage records, in ``<output>.done``, the fingerprint of its resolved configs, its inputs and
the source code it ran; a rerun reuses the stage only when that fingerprint is unchanged, else it says
which keys changed, moves the old output to ``<run_dir>/replaced/`` and runs the stage again. With ``code_changes="keep"`` a stage
whose configs and inputs are unchanged is reused even though its source changed (an edited message or
comment need not re-record hours of rollouts); the log names the files, and the record keeps the old code's
digests, so a later run with ``code_changes="rerun"`` still reruns it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose
from omegaconf import DictConfig

from fiper.atomic import write_atomic
from fiper.fingerprint import canonical, differences, file_digest, make_fingerprint, same, sha256_text, source_digests
from fiper.storage import EpisodeStore
from fiper.storage.integrity import CHECKSUM_KEY
from launch.common import plain

SPECIAL = set(":=,[]{}'\" ")  # a string holding one of these is quoted in an override
# Settings added to a stage's config after earlier versions ran it, with the value that does what those versions did
# (null, left off, does so for any other added setting).
AS_BEFORE = {"failed_demos": "keep"}  # training on every demonstration, as before train.failed_demos existed
REPLACED = "replaced"  # where a rerun moves the output it replaces, under the run directory
CODE_CHANGES = ("rerun", "keep")  # what a changed source file does to a finished stage whose configs and inputs match
UNFINGERPRINTED = ("cpu_threads", "progress", "resume", "overwrite")  # how a stage runs, not what it produces
ALL_CODE = ("fiper", "calibration", "policies", "envs", "launch")
# The source an entry point's output is a function of, where narrower than all of it: demos depend on the envs
# and the writer, a trained policy on the policy code, so an edit of a score does not retrain the policy.
CODE = {
    "collect": ("envs", "fiper/collection.py", "fiper/env_io.py", "fiper/storage", "launch/collect.py"),
    "train": ("policies", "fiper/storage", "fiper/protocol.py", "fiper/guidance_checks.py", "launch/train.py"),
}


@dataclass
class Step:
    """One entry point call of a stage: the module and its composed config."""

    module: Any
    config_name: str
    overrides: list[str]

    def compose(self) -> DictConfig:
        return compose(config_name=self.config_name, overrides=self.overrides)


def override_literal(value: Any) -> str:
    """A python value as a hydra override literal (flow style: {k: v}, [a, b], null)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {override_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(override_literal(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and any(c in value for c in SPECIAL):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def _settings(value: Any, run_dir: str) -> Any:
    """A composed config as fingerprinted: without how-to-run keys, paths inside run_dir relative to it."""
    if isinstance(value, Mapping):
        return {k: _settings(v, run_dir) for k, v in value.items() if k not in UNFINGERPRINTED}
    if isinstance(value, list):
        return [_settings(v, run_dir) for v in value]
    if isinstance(value, str) and value.startswith(run_dir):
        return "<run_dir>" + value[len(run_dir):]
    return value


NAMED = re.compile(r"^([A-Za-z_][\w.]*|[^:]+\.py):[A-Za-z_][\w.]*$")  # 'module:function' or 'path/to/file.py:function'


def _strings(value: Any):
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def named_sources(value: Any) -> dict[str, str]:
    """{'examples/gym_pusher/envs.py': sha256, ...}: the source file of every module a config names as 'module:function'
    or 'path/file.py:function' (an env factory, an expert, a shift's factory, a controller), so that editing one's own
    env or expert reruns the stages that ran it. Names in fiper's own packages are left to the code digests."""
    out: dict[str, str] = {}
    for text in _strings(value):
        if not NAMED.match(text):
            continue
        module = text.rsplit(":", 1)[0]
        if module.endswith(".py"):
            path, key = Path(module), module
        elif module.split(".")[0] in ALL_CODE:
            continue
        else:
            try:
                spec = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                continue
            if spec is None or not spec.has_location or not spec.origin:
                continue
            path, key = Path(spec.origin), module.replace(".", "/") + ("/__init__.py" if spec.submodule_search_locations else ".py")
        if path.is_file():
            out[key] = file_digest(path)
    return out


def store_digest(path: Path) -> str:
    """sha256 of a store a stage reads but no stage wrote (its episode ends, checksum records and attrs): a change retrains."""
    store = EpisodeStore.open(path)
    records = store.meta(CHECKSUM_KEY).tolist() if CHECKSUM_KEY in store.meta_keys else None
    return sha256_text(canonical({"episode_ends": store.episode_ends.tolist(), "checksums": records, "attrs": store.attrs}))


class Stages:
    """The run directory's stages: fingerprints recorded beside each output, reused only when unchanged."""

    def __init__(self, run_dir: Path, code_changes: str = "rerun"):
        if code_changes not in CODE_CHANGES:
            raise ValueError(f"code_changes must be one of {list(CODE_CHANGES)}, got {code_changes!r}")
        self.run_dir, self.code_changes = run_dir, code_changes
        self._replaced: Path | None = None  # this run's folder under run_dir/replaced/, made at the first rerun

    @staticmethod
    def marker(output: Path, kind: str = "done") -> Path:
        return output.with_name(f"{output.name}.{kind}")

    def recorded(self, output: Path, kind: str = "done") -> dict[str, Any] | None:
        """The fingerprint recorded for ``output`` (None: none, or a marker written before fingerprints)."""
        try:
            return json.loads(self.marker(output, kind).read_text())["fingerprint"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def fingerprint(self, steps: list[Step], inputs: Mapping[str, Any]) -> dict[str, Any]:
        root = str(self.run_dir)
        configs = {f"{i}:{s.config_name}": _settings(plain(s.compose()), root) for i, s in enumerate(steps)}
        code = source_digests(sorted({src for s in steps for src in CODE.get(s.config_name, ALL_CODE)}))
        code.update(named_sources(configs))
        return make_fingerprint({"config": configs, "inputs": dict(inputs), "code": code})

    def upstream(self, *outputs: Path) -> dict[str, Any]:
        """Digests of finished upstream stages' records (fingerprint and finishing time): a stage that reran,
        even with the same fingerprint, changes every stage downstream of it."""
        done = {o.name: self.marker(o) for o in outputs}
        return {name: sha256_text(m.read_text()) if m.exists() else None for name, m in done.items()}

    def run(self, name: str, output: Path, fingerprint: dict[str, Any], work: Callable[[], Any]) -> Path:
        done, pending = self.marker(output), self.marker(output, "pending")
        if done.exists() and output.exists() and same(self.recorded(output), fingerprint):
            print(f"[{name}] cached: {output}")
            return output
        code_only = self._code_only_change(output, fingerprint) if done.exists() and output.exists() else []
        if code_only and self.code_changes == "keep":
            names = [c.split(":", 1)[0].removeprefix("code.") for c in code_only if c.startswith("code.")]
            files = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            added = [c.split(": (absent)", 1)[0] for c in code_only if ": (absent)" in c and not c.startswith("code.")]
            gone = [c.split(":", 1)[0] for c in code_only if c.endswith("-> (absent)")]
            also = f"; settings added since, at values that do what the old code did: {', '.join(added)}" if added else ""
            also += f"; settings no longer read, recorded as null: {', '.join(gone)}" if gone else ""
            print(f"[{name}] kept (code_changes=keep): its configs and inputs are unchanged, only source files it ran changed "
                  f"({files}){also}; the output is what the old code made: {output}", flush=True)
            return output
        if done.exists():
            if not output.exists():
                changed = [f"{output.name} is missing"]
            else:
                changed = differences(self.recorded(output), fingerprint) if self.recorded(output) else ["(no fingerprint recorded)"]
            shown = "; ".join(changed[:8]) + (f"; and {len(changed) - 8} more" if len(changed) > 8 else "")
            hint = " (only source files changed: code_changes=keep would reuse the output)" if code_only else ""
            print(f"[{name}] changed since it ran: {shown}; rerunning{hint}", flush=True)
            self._set_aside(name, output, done)
        elif pending.exists() and same(self.recorded(output, "pending"), fingerprint):
            print(f"[{name}] resuming an interrupted run with the same fingerprint", flush=True)
        elif output.exists():
            made_by = ("an unfinished run with other settings (it stopped or failed before the end)" if pending.exists()
                       else "different settings or an older run")
            print(f"[{name}] {output} was made by {made_by}: replacing it", flush=True)
            self._set_aside(name, output, done)
        start = time.perf_counter()
        print(f"[{name}] running -> {output}", flush=True)
        write_atomic(pending, json.dumps({"fingerprint": fingerprint}))
        try:
            work()
        except BaseException:
            if not output.exists():
                pending.unlink(missing_ok=True)
            raise
        seconds = time.perf_counter() - start
        write_atomic(done, json.dumps({"fingerprint": fingerprint, "seconds": round(seconds, 1), "finished": time.time()}, indent=1))
        pending.unlink(missing_ok=True)
        print(f"[{name}] done in {seconds:.0f} s", flush=True)
        return output

    def _code_only_change(self, output: Path, fingerprint: dict[str, Any]) -> list[str]:
        """The changed keys when each is a source file's digest (``code.*``), a setting the record lacks whose value does
        what the version that wrote it did (null, or AS_BEFORE), or a setting no longer read that the record holds as null
        (one renamed, or dropped while off), else []."""
        recorded = self.recorded(output)
        if not recorded:
            return []
        old, new = recorded.get("values", {}), fingerprint.get("values", {})
        changed = differences(recorded, fingerprint)
        keys = [c.split(": ", 1)[0] for c in changed]
        code_like = all(k.startswith("code.") or (k not in old and k in new and _as_before(k, new[k]))
                        or (k in old and k not in new and old[k] is None) for k in keys)
        return changed if changed and code_like else []

    def _set_aside(self, name: str, output: Path, done: Path) -> None:
        """Move a finished output about to be replaced (and its marker) under ``<run_dir>/replaced/``: a rerun deletes nothing."""
        if not output.exists():
            done.unlink(missing_ok=True)
            return
        if self._replaced is None:
            self._replaced = self.run_dir / REPLACED / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        folder = self._replaced
        target = folder / output.name
        for n in range(1, 1000):
            if not target.exists():
                break
            target = folder / f"{output.name}.{n}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(output), str(target))
        if done.exists():
            shutil.move(str(done), str(target.with_name(target.name + ".done")))
        print(f"[{name}] the earlier {output.name} is kept at {target} (delete it once you no longer need it)", flush=True)

    @staticmethod
    def _remove(output: Path, done: Path) -> None:
        done.unlink(missing_ok=True)
        if output.is_dir():
            shutil.rmtree(output)
        elif output.exists():
            output.unlink()


def replaced_note(run_dir: Path) -> str | None:
    """A line on what ``run_dir/replaced/`` holds (outputs earlier runs' reruns set aside, which nothing deletes), or None."""
    folder = run_dir / REPLACED
    runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    outputs = [o for r in runs for o in r.iterdir() if not o.name.endswith(".done")]
    if not outputs:
        return None
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    return (f"{folder} keeps {size / 1e9:.2f} GB: {len(outputs)} output{'s' * (len(outputs) != 1)} that reruns replaced, "
            f"set aside since {runs[0].name}; nothing deletes them: delete those you no longer need")


def _as_before(key: str, value: Any) -> bool:
    """Whether a setting the record lacks does, at ``value``, what the version that wrote the record did."""
    return value is None or AS_BEFORE.get(key.rsplit(".", 1)[-1], object()) == value
