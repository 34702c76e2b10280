"""Which configured methods a task's stores can run.

A store another system recorded may hold the policy's embedding but no sample batch, or no
observations. A method reading an input the task's stores lack (``needs`` of its scores) is left
out of that task, a 'select' method keeps the members that remain, and the task's notes say which
methods were left out and what to record to evaluate them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from fiper.evaluation.config import EvaluationConfig
from fiper.evaluation.rollouts import RolloutError
from fiper.scores.registry import score_class

#: What a store may record for the scores to read (``needs`` of fiper.scores, RolloutSet.recorded), and where.
RECORDED_INPUTS = {"embedding": "decisions/embedding", "samples": "decisions/samples", "observation": "observations (data/<key>)"}


def method_needs(config: EvaluationConfig, name: str) -> frozenset[str]:
    """The inputs every score of method ``name`` reads (a 'select' method: those its members read)."""
    method = config.methods[name]
    names = method.select or (name,)
    scores = [s for m in names for s in config.methods[m].scores]
    return frozenset().union(*(score_class(config.scores[s]["score"]).needs for s in scores))


def runnable_config(config: EvaluationConfig, recorded: Collection[str], task: str) -> tuple[EvaluationConfig, str]:
    """``config`` with only the methods that read nothing beyond ``recorded``, and a note saying what was left
    out and why ('' and ``config`` itself when every method can run). No runnable method is an error."""
    recorded = frozenset(recorded)
    lacking = {n: method_needs(config, n) - recorded for n, m in config.methods.items() if not m.select}
    lacking = {n: miss for n, miss in lacking.items() if miss}
    if not lacking:
        return config, ""
    methods, notes = {}, []
    for name, method in config.methods.items():
        if name in lacking:
            continue
        if method.select:
            kept = tuple(m for m in method.select if m not in lacking)
            if not kept:
                lacking[name] = method_needs(config, name) - recorded
                continue
            if kept != method.select:
                notes.append(f"{name} chooses among {', '.join(kept)} only")
            method = dataclasses.replace(method, select=kept)
        methods[name] = method
    if config.deploy_method is not None and config.deploy_method not in methods:
        notes.append(f"no monitor file is written for this task: the deployed method {config.deploy_method} is left out")
    missing = sorted(frozenset().union(*lacking.values()))
    what = ", ".join(RECORDED_INPUTS[k] for k in missing)
    if not methods:
        raise RolloutError(f"task {task!r}: its stores record no {what}, which every configured method reads; record them "
                           "(docs/rollout_format.md), or add a method that reads what they hold, e.g. the clock: "
                           "'+methods.elapsed={scores: [elapsed], rule: single}'")
    head = (f"its stores record no {what}, so {len(lacking)} method(s) reading {'them' if len(missing) > 1 else 'it'} are "
            f"left out: {', '.join(lacking)}; record {'them' if len(missing) > 1 else 'it'} (docs/rollout_format.md) to "
            "evaluate those methods")
    narrowed = dataclasses.replace(
        config, methods=methods, baselines=tuple(n for n in config.baselines if n in methods),
        references=tuple(n for n in config.references if n in methods),
        deploy_method=config.deploy_method if config.deploy_method in methods else None,
        plot_method=config.plot_method if config.plot_method in methods else None)
    return narrowed, "; ".join([head, *notes])
