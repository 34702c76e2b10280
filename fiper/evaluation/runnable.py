"""Which configured methods a task's stores can run.

A store another system recorded may hold the policy's embedding but no sample batch, or no
observations. A method reading an input the task's stores lack (``needs`` of its scores) is left
out of that task, a 'select' method keeps the members that remain, and the task's notes say which
methods were left out and what to record to evaluate them. An input the stores hold but cannot place
(RolloutSet.unreadable) leaves the methods reading it out the same way, except one the user named on
purpose (``asked_by``), which stops the evaluation naming the fix and the overrides that leave it out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

from fiper.evaluation.config import DEFAULT_METHODS, EvaluationConfig, MethodSpec
from fiper.evaluation.rollouts import RolloutError
from fiper.scores.images import IMAGE_RULE
from fiper.scores.registry import score_class

#: What a store may record for the scores to read (``needs`` of fiper.scores, RolloutSet.recorded), and where.
RECORDED_INPUTS = {"embedding": "decisions/embedding", "samples": "decisions/samples", "observation": "observations (data/<key>)",
                   "image": f"camera image (data/<key> whose steps have {IMAGE_RULE})"}
#: Inputs a task may simply not have (a camera on a low-dim task): methods lacking only these are left out in one
#: clause, without advice to record them, and a select that loses them says nothing of it.
OPTIONAL_INPUTS = frozenset({"image"})


def score_inputs(cls: type) -> frozenset[str]:
    """What a score class reads: its ``needs``, and 'image' for one that reads only camera images (``reads_images``)."""
    return frozenset(cls.needs) | ({"image"} if getattr(cls, "reads_images", False) else frozenset())


def method_needs(config: EvaluationConfig, name: str) -> frozenset[str]:
    """The inputs every score of method ``name`` reads (a 'select' method: those its members read)."""
    method = config.methods[name]
    names = method.select or (name,)
    scores = [s for m in names for s in config.methods[m].scores]
    return frozenset().union(*(score_inputs(score_class(config.scores[s]["score"])) for s in scores))


#: The settings besides ``methods`` that name methods: lists, then single names.
ROLES = ("references", "baselines", "deploy_method", "plot_method")


def asked_by(config: EvaluationConfig, name: str) -> tuple[str, ...]:
    """Where method ``name`` was named on purpose: 'methods' unless it is a default method as DEFAULT_METHODS configures
    it, and each of ROLES whose value differs from its default and names it (the default lists as left after dropped
    default methods)."""
    default = DEFAULT_METHODS.get(name)
    where = ["methods"] if default is None or config.methods[name] != MethodSpec.of(name, default) else []
    defaults = {f.name: f.default for f in dataclasses.fields(EvaluationConfig) if f.name in ROLES}
    for role in ROLES:
        value, was = getattr(config, role), defaults[role]
        if isinstance(value, tuple):
            named = name in value and set(value) != set(was) & set(config.methods)
        else:
            named = value == name and value != was
        where += [role] if named else []
    return tuple(where)


def asked_for(config: EvaluationConfig, name: str) -> bool:
    """Whether method ``name`` was named on purpose anywhere in ``config`` (``asked_by``)."""
    return bool(asked_by(config, name))


def leave_out(config: EvaluationConfig, names: Collection[str]) -> list[str]:
    """The overrides that stop naming ``names`` on purpose: each setting that names one of them, changed."""
    where = {role for n in names for role in asked_by(config, n)}
    fixes = [f"'~methods.{n}'" for n in names if "methods" in asked_by(config, n)]
    for role in ROLES:
        if role in where:
            value = getattr(config, role)
            fixes.append(f"{role}=[{', '.join(m for m in value if m not in names)}]" if isinstance(value, tuple)
                         else f"{role}=<another method, or null>")
    return fixes


def runnable_config(config: EvaluationConfig, recorded: Collection[str], task: str,
                    unreadable: Mapping[str, str] | None = None) -> tuple[EvaluationConfig, str]:
    """``config`` with only the methods that read nothing beyond ``recorded``, and a note saying what was left out and why;
    an input of ``unreadable`` (RolloutSet.unreadable: why, with the fix) refuses a method ``asked_for`` instead (named
    on purpose in methods, references, baselines, deploy_method or plot_method), naming the overrides that leave it out."""
    recorded, unreadable = frozenset(recorded), dict(unreadable or {})
    lacking = {n: method_needs(config, n) - recorded for n, m in config.methods.items() if not m.select}
    lacking = {n: miss for n, miss in lacking.items() if miss}
    if not lacking:
        return config, ""
    asked = [n for n, miss in lacking.items() if miss & unreadable.keys() and asked_for(config, n)]
    if asked:
        why = unreadable[sorted(frozenset().union(*(lacking[n] for n in asked)) & unreadable.keys())[0]]
        named = {n: asked_by(config, n) for n in asked}
        said = ", ".join(n if where == ("methods",) else f"{n} (named in {' and '.join(where)})" for n, where in named.items())
        raise RolloutError(f"task {task!r}: {said} read{'s' * (len(asked) == 1)} what its stores cannot place: {why}; "
                           f"or leave {'it' if len(asked) == 1 else 'them'} out ({', '.join(leave_out(config, asked))})")
    methods, notes = {}, []
    for name, method in config.methods.items():
        if name in lacking:
            continue
        if method.select:
            kept = tuple(m for m in method.select if m not in lacking)
            if not kept:
                lacking[name] = method_needs(config, name) - recorded
                continue
            if kept != method.select and any(not lacking[m] <= OPTIONAL_INPUTS for m in method.select if m in lacking):
                notes.append(f"{name} chooses among {', '.join(kept)} only")
            method = dataclasses.replace(method, select=kept)
        methods[name] = method
    if config.deploy_method is not None and config.deploy_method not in methods:
        notes.append(f"no monitor file is written for this task: the deployed method {config.deploy_method} is left out")
    lacked = frozenset().union(*lacking.values())
    missing = [k for k in RECORDED_INPUTS if k in lacked - unreadable.keys()]
    what = ", ".join(RECORDED_INPUTS[k] for k in missing)
    placed = sorted(lacked & unreadable.keys())
    if not methods:
        clock = "e.g. the clock: '+methods.elapsed={scores: [elapsed], rule: single}'"
        if not placed:
            raise RolloutError(f"task {task!r}: its stores record no {what}, which every configured method reads; record them "
                               f"(docs/rollout_format.md), or add a method that reads what they hold, {clock}")
        reasons = ([f"its stores record no {what} (docs/rollout_format.md)"] if missing else []) + [unreadable[k] for k in placed]
        raise RolloutError(f"task {task!r}: every configured method reads what its stores lack: {'; '.join(reasons)}; or add a "
                           f"method that reads what they hold, {clock}")
    heads = []
    names = [n for n, miss in lacking.items() if miss - unreadable.keys()]
    if missing and set(missing) <= OPTIONAL_INPUTS:
        heads.append(f"its stores record no {what}, so {', '.join(names)} (reading one) {'is' if len(names) == 1 else 'are'} "
                     "left out")
    elif missing:
        heads.append(f"its stores record no {what}, so {len(names)} method(s) reading {'them' if len(missing) > 1 else 'it'} "
                     f"are left out: {', '.join(names)}; record {'them' if len(missing) > 1 else 'it'} "
                     "(docs/rollout_format.md) to evaluate those methods")
    said: set[str] = set()
    for key in placed:
        names = [n for n, miss in lacking.items() if key in miss and not miss - unreadable.keys() and n not in said]
        said.update(names)
        if names:
            heads.append(f"{len(names)} method(s) reading the {key} are left out: {', '.join(names)}, since {unreadable[key]} "
                         "to evaluate them")
    narrowed = dataclasses.replace(
        config, methods=methods, baselines=tuple(n for n in config.baselines if n in methods),
        references=tuple(n for n in config.references if n in methods),
        deploy_method=config.deploy_method if config.deploy_method in methods else None,
        plot_method=config.plot_method if config.plot_method in methods else None)
    return narrowed, "; ".join([*heads, *notes])
