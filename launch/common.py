"""Small helpers shared by the entry points: config saving, device choice, policy loading, cleanup."""

from __future__ import annotations

import inspect
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fiper.atomic import write_atomic


def set_cpu_threads(threads: int | None) -> None:
    """Torch intra-op threads. One is fastest for fiper's small per-decision batches on a CPU and
    avoids oversubscription when several processes share the cores; null keeps torch's default."""
    if threads:
        torch.set_num_threads(int(threads))


def resolve_device(device: str) -> str:
    """'auto' picks CUDA when available."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def save_config(cfg: DictConfig, directory: str | Path, name: str) -> Path:
    """Write the run's full resolved config beside its outputs."""
    return write_atomic(Path(directory) / name, OmegaConf.to_yaml(cfg, resolve=True))


def plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def load_policy_from(cfg: Any, device: str):
    """The policy named by ``policy_dir`` (a fiper checkpoint) or ``policy_factory`` ('module:function' called
    with ``device=``, returning a GenerativePolicy, e.g. an adapter of docs/adapters.md); None when neither is set.
    The entry point's checks (``launch.validate.policy_rules``) have refused both being set."""
    factory, path = cfg.get("policy_factory"), cfg.get("policy_dir")
    if factory:
        return call_policy_factory(factory, resolve_device(device))
    if path is None:
        return None
    from policies import load_policy

    return load_policy(path, device=resolve_device(device))


def maybe_load_policy(path: str | None, device: str):
    """A fiper checkpoint at ``path`` (None: no policy); entry points with ``policy_factory`` use load_policy_from."""
    return load_policy_from({"policy_dir": path}, device)


def call_policy_factory(spec: str, device: str):
    """``spec``'s function called with ``device=``; its result must be a fiper GenerativePolicy."""
    from fiper.env_factory import resolve
    from fiper.protocol import GenerativePolicy

    factory = resolve(spec)
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        params = None
    if params is not None and not any(p.name == "device" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
                                       or p.kind == p.VAR_KEYWORD for p in params):
        name = getattr(factory, "__name__", "load")
        raise ValueError(f"policy_factory={spec} takes no device= keyword (its signature is {name}{inspect.signature(factory)}); "
                         f"every stage calls it with device=: define it as def {name}(device: str = 'cpu') and build the "
                         "policy on that device (docs/adapters.md)")
    policy = factory(device=device)
    if not isinstance(policy, GenerativePolicy):
        members = ("horizon", "n_action_steps", "n_obs_steps", "action_dim", "embedding_dim", "obs_shapes", "device",
                   "reset", "encode", "sample")
        missing = [m for m in members if not hasattr(policy, m)]
        raise ValueError(f"policy_factory={spec} returned a {type(policy).__name__}, not a fiper GenerativePolicy (it lacks "
                         f"{missing}); return an adapter such as fiper.adapters.DiffusersPolicy (docs/adapters.md)")
    problem = _replay_probe(policy)
    if problem:
        warnings.warn(f"policy_factory={spec}: {problem} (docs/adapters.md, \"Checking an adapter\"); until then "
                      "replayed decisions and the outcome sweep's pairing differ from the live ones", stacklevel=2)
    asked, got = torch.device(device), torch.device(policy.device)
    if asked.type != got.type or (asked.index is not None and got.index is not None and asked.index != got.index):
        warnings.warn(f"policy_factory={spec} was called with device={device!r} and returned a policy on {got}: it runs "
                      f"there; build the policy on the device the factory is given", stacklevel=2)
    return policy


def _replay_probe(policy: Any) -> str:
    """fiper.protocol.replay_problem on an all-zero observation history; '' when the policy refuses that input."""
    from fiper.protocol import replay_problem

    obs = {k: torch.zeros(1, policy.n_obs_steps, *shape, device=policy.device) for k, shape in policy.obs_shapes.items()}
    try:
        return replay_problem(policy, obs)
    except Exception:  # an input the policy refuses: the stage's own calls name that problem
        return ""


def check_guidance(policy: Any, responses: Mapping[str, Any], where: str) -> None:
    """Every response that steers (a ``steering`` member) needs a policy whose ``sample`` accepts ``guidance=``; one that
    refuses it (an adapter without denoising steps, docs/adapters.md) is named before any episode runs, not found as a
    fail-safe at every alarm of the sweep, whose steering row would then show the fallback's outcomes. ``responses``
    maps a phrase naming each response (``"response 'steer'"``) to it."""
    steering = [name for name, r in responses.items() if r is not None and getattr(r, "steering", None) is not None]
    if not steering:
        return
    z = torch.zeros(1, policy.embedding_dim, device=policy.device)
    try:
        with torch.no_grad():
            policy.sample(z, 2, generator=torch.Generator(device=z.device).manual_seed(0), guidance=lambda state: None)
    except Exception as err:
        names = ", ".join(steering)
        raise ValueError(f"{where}: {names} steers the policy's sampling, but its sample(..., guidance=) raised "
                         f"{type(err).__name__}: {err}. Drop {names} (the pipeline's act.responses, launch.stress "
                         "response=) or give the adapter guidance support (docs/adapters.md)") from None


def policy_digest(cfg: Any, policy: Any) -> Any:
    """What identifies the policy in a store's fingerprint: the checkpoint's weights digest (policy_dir), or the
    factory's name with the policy's weights fingerprint (policy_factory)."""
    from fiper.fingerprint import directory_digest
    from fiper.monitor.identity import policy_fingerprint

    if cfg.get("policy_factory"):
        return {"factory": cfg.get("policy_factory"), "weights": policy_fingerprint(policy)}
    return directory_digest(cfg.get("policy_dir"))


@contextmanager
def removed_on_failure(path: str | Path, keep: Callable[[Path], bool] = lambda p: False) -> Iterator[None]:
    """Remove ``path`` when the block created it and then failed, unless ``keep(path)`` (e.g. a checkpoint to resume)."""
    path = Path(path)
    existed = path.exists()
    try:
        yield
    except BaseException:
        if not existed and path.exists() and not keep(path):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise


def imported_summary(store: Any, out: str, what: str) -> str:
    """One line on a store an importer wrote: how many ``what`` (episodes, demos), steps, the control period, keys."""
    period = store.attrs.get("control_period_s")
    each = f"{period:g} s each" if period is not None else ("no control period known: give control_period_s=<seconds per "
                                                            "step> for warning times in seconds")
    return (f"imported {store.n_episodes} {what} ({int(store.episode_lengths.sum())} steps, {each}) as "
            f"{', '.join(store.data_keys)} -> {out}")
