"""The pipeline's own checks: overrides in its lists, their quoting on the command line, action entries per task."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from fiper.gym_api import reset_env
from fiper.storage import EpisodeStore
from launch.common import plain, resolve_device
from launch.validate import Bad


def override(v: Any, _: bool) -> None:
    """One hydra override of a stage config, 'key=value' (or '~key' to delete one)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_override(v) if isinstance(v, str) else None
    except Exception:  # hydra's parse errors have no common base class
        parsed = None
    if parsed is None or (parsed.value() is None and not parsed.is_delete() and "=" not in v):
        raise Bad("a hydra override 'key=value' (quoted on the command line when it holds '=' or ':')",
                  "\"env_overrides=['env.factory=my_pkg.envs:make','env.name=null']\"")


def evaluate_mapping(v: Any, _: bool) -> None:
    """The pipeline's ``evaluate``: a mapping of the δ grid, the split and other overrides (not a list of overrides)."""
    if not isinstance(v, Mapping):
        raise Bad("a mapping: evaluate.deltas, evaluate.split.fit / .calibration, and evaluate.overrides for any other setting "
                  "(a list given as evaluate=[...] replaces them all)", "\"evaluate.overrides=['deploy_method=fiper']\"")


def dims_settings(scores: Mapping[str, Any] | None, evaluate: Mapping[str, Any] | None) -> dict[str, Any]:
    """The score settings that name action entries: the monitor's ``dims`` (the evaluation's too) and any
    ``scores.<name>.dims`` in ``evaluate.overrides``."""
    import yaml

    settings = {f"monitor.scores.{name}.dims": spec.get("dims") for name, spec in (scores or {}).items()
                if isinstance(spec, Mapping) and spec.get("dims") is not None}
    for item in (evaluate or {}).get("overrides") or ():
        key, _, value = str(item).lstrip("+").partition("=")
        if key.startswith("scores.") and key.endswith(".dims"):
            settings[f"evaluate.overrides: {key}"] = yaml.safe_load(value)
    return settings


def shipped_dims() -> tuple[str, dict[str, Any]]:
    """The task launch/conf/pipeline.yaml ships and the action entries it ships for it (pick-and-place's hand x, y, z)."""
    import yaml

    conf = yaml.safe_load((Path(__file__).parent / "conf" / "pipeline.yaml").read_text())
    return str(conf.get("task")), dims_settings((conf.get("monitor") or {}).get("scores"), conf.get("evaluate"))


def check_dims_fit(cfg: DictConfig, action_dim: int, whose: str) -> None:
    """Score settings naming action entries (``dims``) beyond ``action_dim``: an error naming ``whose`` actions and
    the entries there are."""
    settings = dims_settings(plain(cfg.monitor).get("scores"), plain(cfg.evaluate))
    bad = {k: v for k, v in settings.items() if isinstance(v, list) and v and max(v) >= action_dim}
    if bad:
        shown = "; ".join(f"{k}={v}" for k, v in bad.items())
        raise ValueError(f"{whose} have {action_dim}-d actions, but {shown} select entries beyond them. Set the "
                         f"action entries of this task, e.g. monitor.scores.ace.dims=[{','.join(map(str, range(action_dim)))}] "
                         "(the evaluation reads it too), or null for every entry")


def stated_keys(overrides: Sequence[str], config_files: Sequence[Path]) -> set[str]:
    """The dotted config keys a user stated: in command-line ``overrides`` and in ``config_files`` of their own."""
    import yaml

    def dotted(node: Any, prefix: str) -> set[str]:
        if not isinstance(node, Mapping):
            return {prefix}
        return set().union(*(dotted(v, f"{prefix}{k}.") for k, v in node.items())) if node else {prefix}

    keys = {str(o).lstrip("+~").partition("=")[0] for o in overrides}
    for path in config_files:
        keys |= {k.rstrip(".") for k in dotted(yaml.safe_load(Path(path).read_text()) or {}, "")}
    return keys


def hydra_stated_keys() -> set[str]:
    """:func:`stated_keys` of the running hydra app: its overrides and its primary config file when that is not
    launch/conf/pipeline.yaml (``--config-dir`` with ``--config-name``, as the examples run); empty outside one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    hydra_cfg = HydraConfig.get()
    shipped = (Path(__file__).parent / "conf" / "pipeline.yaml").resolve()
    files = [path for source in hydra_cfg.runtime.config_sources if source.schema == "file"
             for path in [Path(source.path) / f"{hydra_cfg.job.config_name}.yaml"] if path.is_file() and path.resolve() != shipped]
    return stated_keys(list(hydra_cfg.overrides.task), files[:1])


def check_action_dims(cfg: DictConfig, demos: Path, stated: Collection[str] = ()) -> None:
    """Score settings naming action entries (``dims``) the demos' actions do not have: an error before training.

    The shipped settings name pick-and-place's hand x, y, z; left as shipped for another task, they are said
    to be pick-and-place's, so that they are not used for another env unnoticed. Settings in ``stated`` (the keys
    the user's overrides and own config file set, :func:`hydra_stated_keys`) are the user's, whatever their value.
    """
    store = EpisodeStore.open(demos)
    action_dim, task = int(store.data_array("action").shape[1]), store.attrs.get("task")
    check_dims_fit(cfg, action_dim, f"the demos of task {task!r}")
    settings = dims_settings(plain(cfg.monitor).get("scores"), plain(cfg.evaluate))
    shipped, as_shipped = shipped_dims()  # the shipped task, not train.checkpoint_task, which a run of its own sets null
    unchanged = {k: v for k, v in settings.items() if k in as_shipped and v == as_shipped[k] and k not in stated}
    if unchanged and task != shipped:
        print(f"[monitor] note: {', '.join(f'{k}={v}' for k, v in unchanged.items())} are the settings shipped for {shipped!r}; "
              f"this run's task is {task!r}: set the action entries its scores should read (or null for every entry)", flush=True)


def check_env(env_cfg: Mapping[str, Any], factories: Mapping[str, str], policy: Mapping[str, Any] | None = None,
              pipeline: DictConfig | None = None) -> float:
    """The env's seconds per step, read from one env built before any stage runs, and, given the ``policy`` settings
    the pipeline trains (obs_keys, encoder, image_downsample), the layout of the observation keys it reads: an env that
    declares no period, whose images the policies would misread or the encoder cannot read, is refused before
    collecting and training, not at the first rollouts; large images get a note on the training cost. Given the
    ``pipeline`` config, score settings naming action entries the env's actions lack are refused too."""
    from fiper.env_io import observation_dict
    from fiper.env_factory import env_task_name
    from fiper.control.period import control_period_s
    from launch.stress import env_builder
    from policies.encoders import check_encoder_keys, large_image_note
    from policies.normalizer import check_obs_layout

    probe = env_builder(dict(env_cfg), dict(factories), ["none"])("none", 0.0)
    try:
        task = env_task_name(probe, env_cfg.get("name"))
        try:
            period = control_period_s(probe, env_cfg.get("control_period_s"), env_name=task,
                                      command_line="\"env_overrides=['++env.control_period_s=<seconds>']\"")
        except ValueError as err:
            raise ValueError(f"{err}; nothing has run yet") from None
        if pipeline is not None:
            try:
                check_dims_fit(pipeline, int(np.prod(probe.action_space.shape)), f"the env of task {task!r} and its demos")
            except ValueError as err:
                raise ValueError(f"{err}; nothing has run yet") from None
        if policy is not None:
            obs = observation_dict(reset_env(probe, 0)[0])
            keys = policy.get("obs_keys")
            shapes = {str(k): np.shape(obs[k]) for k in (obs if keys is None else [k for k in keys if k in obs])}
            try:
                for key in shapes:
                    check_obs_layout(key, shapes[key], np.asarray(obs[key]).dtype)
                check_encoder_keys(shapes, policy.get("encoder", "lowdim"), int(policy.get("image_downsample") or 1),
                                   len(policy["image_channels"]) if policy.get("image_channels") else None)
            except ValueError as err:
                raise ValueError(f"env {task!r}: {err} (or train.overrides=['policy.obs_keys=[...]'] in the pipeline); "
                                 "nothing has run yet") from None
            on_cpu = pipeline is None or resolve_device(str(pipeline.device)) == "cpu"  # the train stage's device
            note = large_image_note(shapes, int(policy.get("image_downsample") or 1)) if on_cpu else None
            if note:
                print(f"[train] {note} (in the pipeline: env.kwargs, or train.overrides=['policy.image_downsample=...'])", flush=True)
        if pipeline is not None:
            check_cell_layouts(env_cfg, factories, plain_cells(pipeline), probe, None if policy is None else policy.get("obs_keys"))
        return period
    finally:
        probe.close()


def plain_cells(pipeline: DictConfig) -> list[tuple[str, list[float]]]:
    """The pipeline's stress cells as (shift, severities)."""
    cells = (pipeline.get("rollouts") or {}).get("cells") or []
    return [(str(c[0]), [float(v) for v in c[1]]) for c in cells]


def check_cell_layouts(env_cfg: Mapping[str, Any], factories: Mapping[str, str], cells: list[tuple[str, list[float]]],
                       probe: Any, keys: list[str] | None) -> None:
    """Each stress cell's env, built at its highest severity, gives the nominal env's observation keys (``keys``, else
    all of them) in the same per-step shapes: the policy, trained on the nominal env, refuses any other at the stress
    rollouts' first step, after collection and training."""
    from fiper.env_io import observation_dict
    from launch.stress import env_builder

    nominal = observation_dict(reset_env(probe, 0)[0])
    keys = list(nominal) if keys is None else [k for k in keys if k in nominal]
    shifts = {shift: max(severities) for shift, severities in cells if shift != "none" and severities}
    try:
        make_env = env_builder(dict(env_cfg), dict(factories), list(shifts))
    except ValueError:  # a shift without a factory: the stress stage's own check names it, with the pipeline's settings
        return
    for shift, severity in shifts.items():
        env = make_env(shift, severity)
        try:
            obs = observation_dict(reset_env(env, 0)[0])
        finally:
            env.close()
        wrong = {k: (np.shape(obs[k]) if k in obs else "missing", np.shape(nominal[k])) for k in keys
                 if k not in obs or np.shape(obs[k]) != np.shape(nominal[k])}
        if wrong:
            shown = ", ".join(f"{k!r} {got} where the nominal env's is {want}" for k, (got, want) in wrong.items())
            raise ValueError(f"rollouts.cells: the env of shift {shift!r} at severity {severity:g} gives the observation {shown}: "
                             "the policy, trained on the nominal env, would refuse it at the stress rollouts' first step; give "
                             f"that shift the nominal layout (a camera moved or recoloured, not resized: rollouts.factories.{shift}), "
                             "or leave the cell out; nothing has run yet")


def check_act_stage(composed: DictConfig, stage: str, expert: str | None = None) -> None:
    """The outcome sweep's set-up, before any stage runs: every response name stands for a config that builds and binds
    to the env, a fallback knows which action entries are positions, each act cell's env runs the same episode from a
    seed (given the same fixed actions, and the same actions of ``expert``, the pipeline's collect.expert, which touch
    the task's objects), and the env renders the videos."""
    from fiper.env_factory import resolve
    from fiper.control.seeded_resets import check_seeded_resets
    from launch import act, stress
    from launch.act_videos import check_rendering

    try:
        configs = {name: act.response_config(name, plain(composed.response_configs) or {}) for name in composed.responses}
    except ValueError as err:
        raise ValueError(f"pipeline stage '{stage}': {err} (in the pipeline: act.responses, act.overrides)") from None
    cells = [(str(shift), float(sev)) for shift, sevs in plain(composed.cells) for sev in sevs]
    make_env = stress.env_builder(plain(composed.env), plain(composed.factories), [c[0] for c in cells])
    check_seeded_resets(make_env, cells, f"pipeline stage '{stage}' (act.cells; nothing has run yet)",
                        expert=resolve(expert) if expert else None)
    probe = make_env("none", 0.0)
    try:
        responses = act.check_responses(configs, probe, f"pipeline stage '{stage}' (nothing has run yet)")
        if composed.get("policy_factory"):  # an external policy exists already: a steer response needs it to accept guidance
            from launch.common import call_policy_factory, check_guidance, resolve_device

            policy = call_policy_factory(composed.policy_factory, resolve_device(composed.device))
            check_guidance(policy, {f"response {n!r}": r for n, r in responses.items()},
                           f"pipeline stage '{stage}' (act.responses; nothing has run yet)")
        velocity = any(stress.needs_context(r) and r.fallback is None for r in responses.values())  # a velocity steer alone
        if velocity or any(stress.uses_positions(r) for r in responses.values()):
            try:  # a fallback commands positions: the env or act.overrides must say which action entries are positions
                from fiper.control.period import control_period_s
                from fiper.env_io import observation_dict
                from fiper.gym_api import reset_env

                period = control_period_s(probe, plain(composed.env).get("control_period_s"))  # as the act stage reads it
                context = stress.action_context(plain(composed.context), int(np.prod(probe.action_space.shape)), probe,
                                                 quiet=True, period=period)  # the act stage says its note
                seen = observation_dict(reset_env(probe, 0)[0])  # where a velocity steer's paths start
                for name, response in responses.items():  # a steer reads the same entries as positions
                    try:
                        stress.check_steering_layout(response, context, f"response_configs.{name}.steering", obs=seen)
                    except ValueError as err:
                        raise ValueError(f"{err} (in the pipeline: act.overrides)") from None
            except ValueError as err:
                raise ValueError(f"pipeline stage '{stage}' (nothing has run yet): {err}") from None
    finally:
        probe.close()
    if composed.videos:
        check_rendering(plain(composed.env), plain(composed.factories), composed.video_size,
                        " (in the pipeline: act.videos=false; nothing has run yet)")


LIST_KEYS = ("env_overrides", "train.overrides", "evaluate.overrides", "act.overrides")  # lists of overrides: their elements hold '='


def check_list_quoting(argv: list[str]) -> None:
    """Refuse, before hydra's own parse error, a command-line list of overrides whose elements are not quoted, and
    a list given as the whole ``evaluate`` mapping."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in argv:
        key, _, value = arg.lstrip("+").partition("=")
        if key == "evaluate" and value.startswith("["):
            raise SystemExit(f"{arg}: the pipeline's evaluate is a mapping, so that setting one thing keeps the rest: "
                             "evaluate.deltas=[0.05,0.1], evaluate.split.fit=0.3, evaluate.split.calibration=0.5, and any other "
                             "setting of launch/conf/evaluate.yaml as \"evaluate.overrides=['deploy_method=fiper']\"")
        if key not in LIST_KEYS or not (value.startswith("[") and value.endswith("]")):
            continue
        try:
            parser.parse_override(arg)
        except Exception:  # hydra's parse errors have no common base class
            items, depth, item = [], 0, ""
            for c in value[1:-1]:
                depth += (c in "[{") - (c in "]}")
                if c == "," and depth == 0:
                    items.append(item)
                    item = ""
                else:
                    item += c
            quoted = ",".join(f"'{i.strip()}'" for i in [*items, item] if i.strip())
            raise SystemExit(f"{key}: the list {value} cannot be read: each element is an override holding '=', so quote each "
                             f"one and the whole argument for the shell: \"{key}=[{quoted}]\"") from None
