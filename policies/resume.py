"""What a resumed training run may change: the checks made before anything in the run folder is written.

A resume continues the saved weights and optimizer, so it must train the same network on the same
demonstrations; settings read only when sampling may change, and the checkpoint records the new ones
(``record_sampling`` records them so in a copy of a checkpoint, as launch.pipeline makes of train.checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fiper.atomic import commit_files
from fiper.storage import EpisodeStore

# PolicyConfig fields read only when sampling (acting), never by the training loss or validation.
SAMPLING_ONLY = ("n_action_steps", "num_inference_steps", "ddim_eta", "clip_sample")


def data_record(store: EpisodeStore) -> dict[str, Any]:
    """Which demonstrations a run trains on: the store's path, its store_id and its episode count."""
    return {"store": str(Path(store.path).resolve()), "store_id": store.attrs.get("store_id"),
            "n_episodes": int(store.n_episodes)}


def check_same_data(saved: dict[str, Any] | None, store: EpisodeStore, out_dir: Path) -> None:
    """Refuse to resume ``out_dir`` on demonstrations other than those it was trained on (a checkpoint
    without a record, written before runs recorded their store, is not checked)."""
    if not saved:
        return
    mine = data_record(store)
    fix = (f"train into a new folder (out=<new dir>) to learn from {mine['store']}, or resume with the original "
           f"data={saved.get('store')}")
    if saved.get("store_id") is not None and mine["store_id"] is not None:
        if saved["store_id"] != mine["store_id"]:
            raise ValueError(f"cannot resume {out_dir}: it was trained on the store {saved.get('store')} (store_id "
                             f"{saved['store_id']}), this run reads {mine['store']} (store_id {mine['store_id']}), other "
                             f"demonstrations; {fix}")
    elif saved.get("store") != mine["store"]:
        raise ValueError(f"cannot resume {out_dir}: it was trained on the store {saved.get('store')}, this run reads "
                         f"{mine['store']}; {fix}")
    if saved.get("n_episodes") is not None and saved["n_episodes"] != mine["n_episodes"]:
        raise ValueError(f"cannot resume {out_dir}: its store {mine['store']} held {saved['n_episodes']} episodes when "
                         f"training began and holds {mine['n_episodes']} now, so the split and the normaliser would "
                         f"differ; train into a new folder (out=<new dir>) to learn from all of them")


def sampling_split(saved: dict[str, Any], given: dict[str, Any]) -> tuple[dict[str, list[Any]], list[str]]:
    """The policy config fields that differ: the sampling-only ones as {name: [saved, given]}, and the others' names."""
    differ = sorted(k for k in set(saved) | set(given) if json.dumps(saved.get(k)) != json.dumps(given.get(k)))
    return {k: [saved.get(k), given.get(k)] for k in differ if k in SAMPLING_ONLY}, [k for k in differ if k not in SAMPLING_ONLY]


def policy_changes(saved: dict[str, Any], given: dict[str, Any], out_dir: Path) -> dict[str, list[Any]]:
    """The sampling-only fields that differ, {name: [saved, given]}; any other difference is refused."""
    sampling, refused = sampling_split(saved, given)
    if refused:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r}, given {given.get(k)!r}" for k in refused)
        raise ValueError(f"cannot resume {out_dir}: its policy config differs from this run's in what training learns "
                         f"({detail}); give the saved values (train_config.json in that folder), or train into a new "
                         f"folder (out=<new dir>). Only {list(SAMPLING_ONLY)} may change on a resume")
    return sampling


def record_sampling(directory: Path, changes: dict[str, list[Any]]) -> None:
    """Write the given values of ``changes`` ({name: [saved, given]}) into the checkpoint's config.json (what load_policy
    reads) and train_config.json, together, as a resumed run's checkpoint records them."""
    from policies.checkpoint import CONFIG_FILE
    from policies.training import TRAIN_CONFIG_FILE

    if not changes:
        return
    writers = {}
    for name in (TRAIN_CONFIG_FILE, CONFIG_FILE):  # config.json, the file load_policy reads, changes last
        if (directory / name).is_file():
            record = json.loads((directory / name).read_text())
            record["policy"] = {**record["policy"], **{k: given for k, (_, given) in changes.items()}}
            writers[name] = lambda path, text=json.dumps(record, indent=2): path.write_text(text)
    commit_files(directory, writers)


def check_failed_demos(saved: dict[str, Any], store: EpisodeStore, failed_demos: str, out_dir: Path) -> None:
    """Refuse to resume, leaving failed episodes out, a run whose train_config.json has no failed_demos: it was trained
    before training left them out, so on every episode."""
    if "failed_demos" in saved or failed_demos == "keep" or "success" not in store.meta_keys:
        return
    failed = int((~np.asarray(store.meta("success")).astype(bool)).sum())
    if failed:
        raise ValueError(f"cannot resume {out_dir}: it was trained on every episode of {store.path}, including the {failed} "
                         "whose meta/success is false, and train.failed_demos=skip would leave them out (another split and "
                         "normaliser); resume with train.failed_demos=keep, as it was trained, or train into a new folder "
                         "(out=<new dir>) to learn from the successful ones only")
