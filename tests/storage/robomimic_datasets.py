"""Small robomimic datasets written as robomimic's dataset_states_to_obs.py writes them (h5py): demos under
data/demo_<i> numbered out of order, low-dim and camera observations, next_obs, states, rewards, dones,
absolute actions beside the deltas, the actions' parts in action_dict (as robomimic 0.4 and later write them), a
train / valid mask of byte strings, and env_args as robosuite serialises them."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

SIDE = 12
LENGTHS = {0: 5, 2: 7, 10: 6}  # by name demo_10 comes before demo_2; robomimic orders by number
ENV_ARGS = {"env_name": "Lift", "env_version": "1.5.2", "type": 1,
            "env_kwargs": {"robots": ["Panda"], "control_freq": 20, "has_renderer": False, "use_camera_obs": True,
                           "camera_names": ["agentview"], "camera_heights": SIDE, "camera_widths": SIDE}}


def eef(demo: int, length: int) -> np.ndarray:
    """The end effector's position: demo and step readable back from every row."""
    t = np.arange(length, dtype=np.float64)[:, None]
    return np.hstack([np.full_like(t, demo), t, 0.01 * t])


def write(path: Path, *, lengths: dict[int, int] = LENGTHS, with_obs: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for demo, n in lengths.items():
            group = data.create_group(f"demo_{demo}")
            group.create_dataset("actions", data=np.tile([0.1 * demo, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0], (n, 1)))
            group.create_dataset("actions_abs", data=eef(demo, n) + 0.5)
            group.create_dataset("action_dict/rel_pos", data=np.tile([0.1 * demo, 0.0, -0.1], (n, 1)))  # robomimic >= 0.4
            group.create_dataset("action_dict/gripper", data=np.ones((n, 1)))
            group.create_dataset("states", data=np.zeros((n, 32)))
            group.create_dataset("rewards", data=np.r_[np.zeros(n - 1), 1.0])
            group.create_dataset("dones", data=np.r_[np.zeros(n - 1), 1].astype(np.int64))
            if with_obs:
                for kind in ("obs", "next_obs"):
                    shift = kind == "next_obs"
                    group.create_dataset(f"{kind}/robot0_eef_pos", data=eef(demo, n) + shift)
                    group.create_dataset(f"{kind}/object", data=np.ones((n, 10)) * demo)
                    images = np.zeros((n, SIDE, SIDE, 3), np.uint8) + (10 * np.arange(n) + shift)[:, None, None, None]
                    group.create_dataset(f"{kind}/agentview_image", data=images.astype(np.uint8), compression="gzip")
            group.attrs["num_samples"] = n
            group.attrs["model_file"] = "<mujoco model='lift'/>"
        data.attrs["total"] = int(sum(lengths.values()))
        data.attrs["env_args"] = json.dumps(ENV_ARGS, indent=4)
        f.create_dataset("mask/train", data=np.array([b"demo_10", b"demo_0"], dtype="S"))
        f.create_dataset("mask/valid", data=np.array([b"demo_2"], dtype="S"))
    return path
