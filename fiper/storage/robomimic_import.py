"""Demonstrations in robomimic's HDF5 format (robomimic, robosuite, MimicGen, LIBERO datasets) as a fiper store.

A dataset file (``data/demo_<i>`` groups with ``actions`` and ``obs/<key>``, ``data.attrs['env_args']``, optional
``mask/<filter key>``) becomes a demonstration store: each observation key one ``data/<key>`` array (renamed by
``keys``), the chosen action dataset (or datasets, such as robomimic's ``action_dict/<part>``, side by side) as
``data/action`` (float64 where the file stores float64, so absolute actions keep their small steps beside a large
offset; float32 otherwise), demos in robomimic's order (by number), the control period
``1 / control_freq`` from the env's arguments (or ``control_period_s``), checked by fiper.control.period.
Everything is checked before the store is written, and it is written whole or not at all (fiper.storage.building):
a demo that cannot be read leaves ``out`` as it was. Reads with h5py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiper.control.period import recorded_period
from fiper.storage.building import build_store, check_out
from fiper.storage.import_names import store_names
from fiper.storage.store import EpisodeStore

DEMO = re.compile(r"demo_(\d+)$")


class RobomimicImportError(ValueError):
    """A file that is not a readable robomimic dataset, or one fiper cannot store as it is."""


def _h5py():
    try:
        import h5py
    except ImportError:
        raise RobomimicImportError("reading a robomimic dataset needs h5py: pip install 'fiper[robomimic]'") from None
    return h5py


def _demos(f: Any, path: Path, filter_key: str | None) -> list[str]:
    """The demos to import, in robomimic's order (by number), all or those ``mask/<filter_key>`` lists."""
    if "data" not in f:
        raise RobomimicImportError(f"{path} holds no 'data' group, so it is not a robomimic dataset (data/demo_0, ...)")
    names = [n for n in f["data"] if DEMO.match(n)]
    if filter_key is not None:
        masks = sorted(f["mask"]) if "mask" in f else []
        if filter_key not in masks:
            raise RobomimicImportError(f"{path} has no filter key {filter_key!r} (it has {masks or 'none'}); give one of "
                                       "them, or leave filter_key out to import every demo")
        wanted = [n.decode() if isinstance(n, bytes) else str(n) for n in f["mask"][filter_key][:]]
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise RobomimicImportError(f"{path}: filter key {filter_key!r} lists {missing[:5]}, which data/ does not hold; "
                                       "the file is incomplete")
        names = wanted
    return sorted(names, key=lambda n: int(DEMO.match(n).group(1)))


def env_args(f: Any) -> dict[str, Any]:
    """``data.attrs['env_args']`` as a dict (empty when absent or not JSON)."""
    raw = f["data"].attrs.get("env_args")
    try:
        args = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else {}
    except (TypeError, ValueError):
        return {}
    return args if isinstance(args, dict) else {}


def _period(args: Mapping[str, Any], given: float | None, path: Path) -> float | None:
    """Seconds per step: 1 / the env's ``control_freq``, or ``given`` (``control_period_s``) where the dataset has no
    plausible one (fiper.control.period.recorded_period)."""
    try:
        return recorded_period(given, (args.get("env_kwargs") or {}).get("control_freq"),
                               f"env_kwargs.control_freq in {path}", rate_required=False, example="robosuite's 20 Hz: 0.05")
    except ValueError as err:
        raise RobomimicImportError(str(err)) from None


def _action_parts(group: Any, demo: str, action: Sequence[str], path: Path) -> list[Any]:
    """The datasets ``action`` names in one demo (paths under it, e.g. ``actions`` or ``action_dict/rel_pos``)."""
    parts = []
    for name in action:
        if name not in group:
            raise RobomimicImportError(f"{path}: data/{demo} holds no {name!r} dataset (it has "
                                       f"{sorted(k for k in group if k not in ('obs', 'next_obs'))}); give action=<one of them>")
        if not hasattr(group[name], "shape"):  # an h5py group, such as robomimic's action_dict
            inside = sorted(group[name])
            example = ",".join(f"{name}/{k}" for k in inside[:3])
            raise RobomimicImportError(f"{path}: data/{demo}/{name} is a group of datasets {inside}, not an action dataset; "
                                       f"give one of them, action={name}/{inside[0] if inside else '<name>'}, or a list to "
                                       f"place side by side, e.g. 'action=[{example}]'")
        parts.append(group[name])
    return parts


def _checked_shapes(f: Any, demos: Sequence[str], obs: Sequence[str], action: Sequence[str], path: Path) -> None:
    """Every demo holds the chosen observations and action datasets, each with one row per step."""
    for demo in demos:
        group = f["data"][demo]
        parts = _action_parts(group, demo, action, path)
        steps = parts[0].shape[0]
        rows = {name: part.shape[0] for name, part in zip(action, parts)}
        rows.update({f"obs/{key}": group["obs"][key].shape[0] for key in obs if key in group.get("obs", {})})
        for key in obs:
            if key not in group.get("obs", {}):
                raise RobomimicImportError(f"{path}: data/{demo} holds no observation {key!r}, which the first demo has; "
                                           "list only keys every demo holds in obs=[...]")
        uneven = {name: n for name, n in rows.items() if n != steps}
        if uneven:
            raise RobomimicImportError(f"{path}: in data/{demo}, {uneven} rows against {action[0]!r}'s {steps}; the demo "
                                       "is damaged (extract its observations again)")


def _demo_rows(group: Any, demo: str, obs: Sequence[str], names: Mapping[str, str], action: Sequence[str],
               path: Path) -> dict[str, np.ndarray]:
    """One demo's rows by store key; float64 actions stay float64 (float32 would round an absolute action's offset)."""
    try:
        parts = [np.asarray(part, dtype=np.float64 if part.dtype == np.float64 else np.float32)
                 for part in _action_parts(group, demo, action, path)]
        data = {names[k]: np.asarray(group["obs"][k]) for k in obs}
    except OSError as err:  # h5py: a chunk that does not decompress, a file cut short
        raise RobomimicImportError(f"{path}: data/{demo} cannot be read ({err}); the file is damaged (download or extract it "
                                   "again); nothing was written") from None
    data["action"] = np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)
    return data


def import_robomimic(dataset: str | os.PathLike, out: str | os.PathLike, *, keys: Mapping[str, str] | None = None,
                     obs: Sequence[str] | None = None, action: str | Sequence[str] = "actions", filter_key: str | None = None,
                     task: str | None = None, max_episodes: int | None = None, control_period_s: float | None = None,
                     overwrite: bool = False) -> EpisodeStore:
    """Write the robomimic dataset at ``dataset`` as a fiper demonstration store at ``out``; see the module docstring."""
    h5py = _h5py()
    path = Path(dataset).expanduser()
    action = [action] if isinstance(action, str) else list(action)
    if not action:
        raise RobomimicImportError("action=[] names no action dataset; give action=actions (or the datasets to place side by side)")
    if not path.is_file():
        raise RobomimicImportError(f"{path} is not a file; give the dataset's .hdf5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise RobomimicImportError(f"{path} is not an HDF5 file h5py can open ({err}); give a robomimic dataset (.hdf5)") from None
    check_out(out, overwrite)
    with f:
        demos = _demos(f, path, filter_key)[:max_episodes]
        if not demos:
            raise RobomimicImportError(f"{path} holds no demo (data/demo_<i>)" + (f" under filter key {filter_key!r}" if filter_key else ""))
        first = f["data"][demos[0]]
        if "obs" not in first or not len(first["obs"]):
            raise RobomimicImportError(f"{path} holds no observations (data/{demos[0]}/obs), as a raw robosuite demo.hdf5 does; "
                                       "extract them first with robomimic's dataset_states_to_obs.py")
        available = sorted(first["obs"])
        chosen = list(obs) if obs else available
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            raise RobomimicImportError(f"obs names {unknown}, which the dataset does not observe (it has {available})")
        names = store_names(chosen, dict(keys or {}), str, RobomimicImportError, what="observation key", taken=["action"])
        _checked_shapes(f, demos, chosen, action, path)
        args = env_args(f)
        period = _period(args, control_period_s, path)
        attrs = {"task": task or str(args.get("env_name") or path.stem), "source": "robomimic",
                 "robomimic": {"dataset": str(path), "env_name": args.get("env_name"), "env_type": args.get("type"),
                               "filter_key": filter_key, "action": action[0] if len(action) == 1 else action, "keys": names}}
        if period is not None:
            attrs["control_period_s"] = period

        def fill(store: EpisodeStore) -> None:
            for demo in demos:
                store.append_episode(_demo_rows(f["data"][demo], demo, chosen, names, action, path))

        return build_store(out, fill, attrs=attrs, overwrite=overwrite)
