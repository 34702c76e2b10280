"""Config checks every entry point runs before it creates anything.

Each entry point lists its keys with a check (``CHECKS`` in the entry point's module); ``validate``
reads them from the composed config and raises one ConfigError (a ValueError) naming every bad key,
its value, what is expected and an example of a valid override. Types are strict: an int key takes
an int (``num_samples=2.5`` is refused, not rounded), a list key a list (``deltas=abc`` is refused
as a whole).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A config value of the wrong type or range, found before the run created anything."""


class Bad(Exception):
    """Raised by a check: what was expected, and a valid example."""

    def __init__(self, expected: str, example: str):
        super().__init__(expected)
        self.expected, self.example = expected, example


Check = Callable[[Any, bool], None]  # (value, check_paths) -> None, raises Bad


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def integer(minimum: int | None = None, example: int = 1) -> Check:
    what = "an integer" if minimum is None else f"an integer >= {minimum}"

    def check(v: Any, _: bool) -> None:
        if not _is_int(v) or (minimum is not None and v < minimum):
            raise Bad(what, str(example))
    return check


positive_int = integer(1, 10)
seed = integer(0, 0)


def number(low: float | None = None, high: float | None = None, *, bounds: str = "()", example: float = 0.1) -> Check:
    """A finite number between ``low`` and ``high``; ``bounds`` says which ends are included: '()', '[]', '[)' or '(]'."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    what = "a finite number" if low is None and high is None else f"a number in {bounds[0]}{lo}, {hi}{bounds[1]}"

    def check(v: Any, _: bool) -> None:
        ok = _is_number(v)
        if ok and low is not None:
            ok = v >= low if bounds[0] == "[" else v > low
        if ok and high is not None:
            ok = v <= high if bounds[1] == "]" else v < high
        if not ok:
            raise Bad(what, f"{example:g}")
    return check


probability = number(0.0, 1.0, example=0.1)  # a delta or a split share: strictly between 0 and 1
positive = number(0.0, None, example=1.0)


def seconds_per_step(v: Any, _: bool) -> None:
    """A control period fiper.control.period.positive_seconds accepts (not milliseconds, not a rate in Hz)."""
    from fiper.control.period import MAX_PERIOD_S, MIN_PERIOD_S, positive_seconds

    if _is_number(v):
        try:
            positive_seconds(v, "control_period_s")
            return
        except ValueError:
            pass
    raise Bad(f"seconds per env step in [{MIN_PERIOD_S:g}, {MAX_PERIOD_S:g}] (not milliseconds, not a rate in Hz)",
              "0.1 for 10 Hz")


def boolean(v: Any, _: bool) -> None:
    if not isinstance(v, bool):
        raise Bad("true or false", "true")


def text(v: Any, _: bool) -> None:
    if not isinstance(v, str) or not v.strip():
        raise Bad("a non-empty string", "name")


def choice(*options: str) -> Check:
    def check(v: Any, _: bool) -> None:
        if v not in options:
            raise Bad("one of " + " | ".join(options), options[0])
    return check


def target(v: Any, _: bool) -> None:
    """'module:function'."""
    if not isinstance(v, str) or v.count(":") != 1 or not all(v.split(":")):
        raise Bad("'module:function'", "my_pkg.envs:make")


def optional(check: Check) -> Check:
    def inner(v: Any, paths: bool) -> None:
        if v is not None:
            try:
                check(v, paths)
            except Bad as bad:
                raise Bad(bad.expected + " or null", bad.example) from None
    return inner


def _expected(check: Check) -> str:
    """What ``check`` accepts, in words (every check refuses a bare object)."""
    try:
        check(object(), False)
    except Bad as bad:
        return bad.expected
    return "values"


def list_of(item: Check, *, non_empty: bool = True, example: str = "[0.05, 0.1]") -> Check:
    def check(v: Any, paths: bool) -> None:
        if not isinstance(v, (list, tuple)) or (non_empty and not v):
            raise Bad(f"a {'non-empty ' if non_empty else ''}list, each element {_expected(item)}", example)
        for x in v:
            try:
                item(x, paths)
            except Bad as bad:
                raise Bad(f"a list, each element {bad.expected} (element {x!r} is not)", example) from None
    return check


def existing_path(kind: str = "path") -> Check:
    """A string naming an existing file or directory (checked only when ``check_paths``)."""
    def check(v: Any, paths: bool) -> None:
        if not isinstance(v, str) or not v.strip():
            raise Bad(f"a {kind}", f"<{kind}>")
        if paths and not Path(v).exists():  # a relative path: name the directory a job resolves it in (hydra.job.chdir)
            where = "" if Path(v).is_absolute() else f", read relative to the working directory {os.getcwd()}"
            raise Bad(f"an existing {kind} (nothing at {v}{where})", f"<existing {kind}>")
    return check


def episode_selection(v: Any, _: bool) -> None:
    from fiper.monitor.decision_data import parse_selection  # torch-free callers of this module need not load it

    try:
        parse_selection(v)
    except ValueError:
        raise Bad("'start:stop' (a slice of episode indices) or a list of episode indices", "0:80") from None


def window(v: Any, _: bool) -> None:
    if v != "episode" and not (_is_int(v) and v >= 1):
        raise Bad("an integer >= 1 or 'episode'", "5")


def shift_list(v: Any, _: bool) -> None:
    """[[name, severity in [0, 1]], ...]."""
    ok = isinstance(v, (list, tuple)) and all(
        isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], str) and _is_number(s[1]) and 0 <= s[1] <= 1 for s in v)
    if not ok:
        raise Bad("a list of [shift name, severity in [0, 1]] pairs", "[[obstacle,0.5]]")


def cells(v: Any, _: bool) -> None:
    """[[shift, [severities in [0, 1]]], ...]."""
    ok = isinstance(v, (list, tuple)) and bool(v) and all(
        isinstance(c, (list, tuple)) and len(c) == 2 and isinstance(c[0], str) and isinstance(c[1], (list, tuple)) and bool(c[1])
        and all(_is_number(s) and 0 <= s <= 1 for s in c[1]) for c in v)
    if not ok:
        raise Bad("a non-empty list of [shift, [severities in [0, 1]]]", "[[none,[0.0]],[obstacle,[0.5,1.0]]]")


def text_mapping(example: str) -> Check:
    """A mapping of names to strings, ``example`` shown when the value is not one."""
    def check(v: Any, _: bool) -> None:
        if not isinstance(v, Mapping) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
            raise Bad("a mapping of names to strings", example)
    return check


mapping_of_text = text_mapping("{obstacle: my_pkg.envs:make_obstacle}")


def deadlines(v: Any, _: bool) -> None:
    """``deadline_ms``: milliseconds for the policy's calls and the monitor's step, each a positive number or null."""
    ok = isinstance(v, Mapping) and set(v) <= {"policy", "monitor"} and all(
        x is None or (_is_number(x) and x > 0) for x in v.values())
    if not ok:
        raise Bad("{policy: <ms> or null, monitor: <ms> or null}, each a positive number of milliseconds",
                  "deadline_ms.policy=100")


ENV_CHECKS: dict[str, Check] = {
    "env.name": optional(text),
    "env.factory": target,
    "env.obs_mode": optional(text),  # a user factory may take none
    "env.shifts": shift_list,
    "env.wrappers": optional(list_of(target, non_empty=False, example="['fiper.wrappers:TerminationIsSuccess']")),
}
THREADS: dict[str, Check] = {"cpu_threads": optional(positive_int), "device": text}
POLICY_KEYS = ("policy_dir", "policy_factory")
POLICY_EXAMPLE = "policy_dir=<fiper checkpoint dir> or policy_factory=my_pkg.policies:load"


def one_policy(required: bool) -> Check:
    """policy_dir (a fiper checkpoint) or policy_factory ('module:function' returning a GenerativePolicy): exactly one
    where the entry point needs a policy (``required``), at most one where it may replay recorded decisions instead."""
    def check(values: Mapping[str, Any], _: bool) -> None:
        given = [k for k in POLICY_KEYS if values.get(k) not in (None, _ABSENT, "???")]
        if len(given) > 1 or (required and not given):
            need = "exactly one of them" if required else "at most one of them"
            raise Bad(f"{need}, got {'both' if given else 'neither'}", POLICY_EXAMPLE)
    return check


def policy_rules(required: bool) -> dict[Any, Check]:
    """The rules of an entry point that loads a policy (``launch.common.load_policy_from`` loads it)."""
    return {"policy_dir": optional(existing_path("policy directory")), "policy_factory": optional(target),
            POLICY_KEYS: one_policy(required)}

_ABSENT = object()


def _value(cfg: Any, key: str) -> Any:
    if isinstance(cfg, (DictConfig, ListConfig)):
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
        if isinstance(parent, DictConfig) and leaf in parent.keys() and OmegaConf.is_missing(parent, leaf):
            return "???"
        node = OmegaConf.select(cfg, key, default=_ABSENT)
        return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
    value = cfg
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def problems(cfg: Any, rules: Mapping[str, Check], *, check_paths: bool = True) -> list[str]:
    """One line per bad key: 'key=<value>: expected ... (e.g. key=<example>)'."""
    out = []
    for key, check in rules.items():
        if isinstance(key, tuple):  # a rule over several keys: its check gets their values by name
            try:
                check({k: _value(cfg, k) for k in key}, check_paths)
            except Bad as bad:
                out.append(f"{' / '.join(key)}: expected {bad.expected} (e.g. {bad.example})")
            continue
        value = _value(cfg, key)
        if value is _ABSENT:
            continue  # a key this config does not have (an older preset); the entry point's default applies
        if value == "???":
            out.append(f"{key} is required (e.g. {key}=<value>)")
            continue
        try:
            check(value, check_paths)
        except Bad as bad:
            out.append(f"{key}={value!r}: expected {bad.expected} (e.g. {key}={bad.example})")
    return out


def validate(cfg: Any, rules: Mapping[str, Check], entry: str, *, check_paths: bool = True) -> None:
    """Raise ConfigError listing every key that fails its check; nothing has been created yet."""
    found = problems(cfg, rules, check_paths=check_paths)
    if found:
        raise ConfigError(f"python -m launch.{entry}: invalid config, nothing was run or written:\n  " + "\n  ".join(found))


RESUMES = ("every episode recorded before it is kept (an episode is committed whole or not at all); rerun the same "
           "command to resume: it records only the episodes the store lacks")


def input_errors() -> tuple[type[Exception], ...]:
    """The errors that name bad input and its fix: fiper's, and gymnasium's for an id it has not registered (a typo, a
    package not imported), whose messages name the ids there are."""
    import gymnasium as gym

    return ValueError, FileNotFoundError, FileExistsError, gym.error.UnregisteredEnv, gym.error.DeprecatedEnv


@contextmanager
def reported(interrupted: str = "") -> Iterator[None]:
    """For a command's main: an error that names its problem and fix (:func:`input_errors`) ends the command with its
    message, without a traceback; FIPER_TRACEBACK=1 keeps the traceback.
    Ctrl-C ends it with exit status 130 and ``interrupted`` (what was kept, e.g. RESUMES) instead of a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        if os.environ.get("FIPER_TRACEBACK"):
            raise
        print(f"interrupted{': ' + interrupted if interrupted else ''}", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:
        if os.environ.get("FIPER_TRACEBACK") or not isinstance(err, input_errors()):
            raise
        notes = "".join(f"\n{note}" for note in getattr(err, "__notes__", ()))  # e.g. which env factory raised it
        raise SystemExit(f"error: {err}{notes}\n(set FIPER_TRACEBACK=1 for the traceback)") from None


def refuse_renamed(overrides: Iterable[str], renamed: Mapping[str, str], command: str) -> None:
    """End ``command`` naming the setting to use when an override names one by another word (``renamed``: old -> new),
    instead of Hydra's 'not in struct' error."""
    for arg in overrides:
        head = arg.lstrip("+~").split("=", 1)[0].split(".", 1)[0]
        if head in renamed:
            fixed = arg.replace(head, renamed[head], 1)
            raise SystemExit(f"error: {command} has no setting {head!r}; it is called {renamed[head]!r}: {fixed}")


# hydra/launcher=<name> -> (the plugin's module, its package, fiper's extra that installs it)
LAUNCHER_PLUGINS = {
    "local": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "cluster"),
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "cluster"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
    "ray_cluster": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "hydra-ray-launcher", "ray"),
}


def check_launcher_plugin(overrides: Iterable[str]) -> None:
    """End the command naming the install when ``hydra/launcher=<name>`` asks for a launcher plugin that is not
    installed, instead of hydra's "Could not load 'hydra/launcher/joblib'" (the plugin ships the config fiper's preset
    builds on)."""
    import importlib.util

    for arg in overrides:
        if not arg.startswith("hydra/launcher="):
            continue
        name = arg.split("=", 1)[1]
        if name not in LAUNCHER_PLUGINS:
            continue
        module, package, extra = LAUNCHER_PLUGINS[name]
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise SystemExit(f"error: {arg} runs the sweep through {package}, which is not installed in this environment "
                             f"({sys.executable}): pip install 'fiper[{extra}]' (or pip install {package}), then run the "
                             "same command again (docs/sweeps.md)")


def merged(*rule_sets: Mapping[str, Check]) -> dict[str, Check]:
    out: dict[str, Check] = {}
    for rules in rule_sets:
        out.update(rules)
    return out


def prefixed(prefix: str, rules: Mapping[str, Check]) -> dict[str, Check]:
    return {f"{prefix}.{k}": v for k, v in rules.items()}

