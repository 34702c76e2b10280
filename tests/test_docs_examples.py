"""Every code example a user copies from the docs works against the code as it is.

Covers README.md and docs/*.md except docs/results.md and docs/benchmarks.md (their commands are
long experiment runs). Two checks:

* Every fenced ```python block is executed: each in a fresh namespace and its own temporary
  working directory, all blocks in one subprocess (nothing a block writes lands in the
  repository, and this process's torch / hydra state stays clean). Tracebacks point at the
  doc's own lines. A block that uses objects the surrounding prose introduces (``policy``,
  ``obs``, a fitted monitor in ``runs/monitor``, ...) gets exactly those names from a short
  prelude in ``BLOCKS`` -- tiny untrained policies, the shipped pick-and-place checkpoint,
  synthetic rollout stores -- and no others, so a missing import in a doc still fails. A
  ``check`` then asserts what the prose promises. Blocks that cannot run are skipped in
  ``BLOCKS`` with a reason; the rest run unchanged except for the few ``replace`` edits listed
  there (each with its reason: a shorter run, the CPU instead of a GPU).
* Every ``python -m launch.<entry> ...`` command of a shell block, and each one quoted inline with
  overrides, is composed with hydra's ``--cfg job --resolve`` (``COMMAND_FRAGMENTS`` adds the
  overrides the prose quotes on their own): config groups and override keys must exist,
  interpolations must resolve and no mandatory value (``???``) may be left out. ``<placeholder>``
  and ``...`` values become ``x``; a multirun sweep composes its first point.

The two subprocesses run side by side; the whole file takes well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md"] + [f"docs/{name}.md" for name in (
    "adapters", "monitor", "control_loop", "interventions", "scores", "calibration", "evaluation", "envs",
    "policies", "rollout_format", "metrics", "sweeps", "architecture")]
TIMEOUT_S = 240


# ---------------------------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class CodeBlock:
    doc: str
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str

    @property
    def key(self) -> tuple[str, str]:
        """(doc, first non-blank code line): stable when text above the block moves."""
        first = next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")
        return self.doc, first

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def code_blocks(doc: str) -> list[CodeBlock]:
    lines = (ROOT / doc).read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        blocks.append(CodeBlock(doc, i + 2, fence.group(1), "\n".join(lines[i + 1:j]) + "\n"))
        i = j + 1
    return blocks


def python_blocks() -> list[CodeBlock]:
    return [b for doc in DOCS for b in code_blocks(doc) if b.lang == "python"]


def block_by_key(key: tuple[str, str]) -> CodeBlock:
    found = [b for b in python_blocks() if b.key == key]
    assert len(found) == 1, f"{key}: {len(found)} python blocks start with that line"
    return found[0]


# ---------------------------------------------------------------------------------------------- python blocks
# Helpers the preludes call as H.<name> (the blocks themselves never see H).
HELPERS = '''
import numpy as np
import torch

PICK_PLACE = dict(embedding_dim=64, num_samples=8, horizon=16, action_dim=4, n_action_steps=4)  # the shipped policy, B = 8
TINY_SCORES = {"rnd_oe": {"score": "rnd_oe", "train": {"max_epochs": 3}}, "ace": {"score": "ace"}}


def tiny_policy(obs_shapes, action_dim, **overrides):
    """An untrained diffusion-MLP policy: its shapes and API are all a doc example needs."""
    from policies import PolicyConfig, build_policy
    torch.manual_seed(0)
    cfg = dict(kind="diffusion", denoiser="mlp", horizon=8, n_action_steps=4, embed_dim=16, encoder_hidden=32,
               mlp_hidden=32, mlp_layers=1, num_inference_steps=4)
    cfg.update(overrides)
    return build_policy(PolicyConfig(**cfg), {k: tuple(v) for k, v in obs_shapes.items()}, action_dim)


def shipped_policy():
    """The pick-and-place checkpoint the repository ships (copied into the working directory)."""
    from policies import load_policy
    return load_policy("launch/checkpoints/pick_place_diffusion_mlp", device="cpu")


def policy_decisions(policy, num_samples, episodes, per_episode, seed):
    from fiper.scores import ScoreFitData
    g = torch.Generator().manual_seed(seed)
    n = episodes * per_episode
    obs = {k: torch.randn(n, policy.n_obs_steps, *shape, generator=g) for k, shape in policy.obs_shapes.items()}
    z = policy.encode(obs)
    samples = policy.sample(z, num_samples, generator=g)
    return ScoreFitData(z.numpy(), samples.numpy(), np.arange(1, episodes + 1) * per_episode, seed=seed)


def tiny_monitor(policy, directory="runs/monitor", num_samples=8):
    """A fitted and calibrated RND-OE + ACE monitor for ``policy`` (random observations), saved to ``directory``."""
    from fiper.monitor import PolicyIdentity, save_monitor
    from fiper.monitor.fitting import fit_monitor
    fit, cal = policy_decisions(policy, num_samples, 10, 6, 0), policy_decisions(policy, num_samples, 10, 6, 1)
    monitor = fit_monitor(fit, PolicyIdentity.of(policy, num_samples), scores=TINY_SCORES, windows={"rnd_oe": 2, "ace": 2})
    monitor.calibrate(monitor.score_offline(cal.embeddings, cal.samples, cal.decision_ends), cal.decision_ends, delta=0.2)
    save_monitor(monitor, directory)
    return monitor


def rollout_store(path, seed, task=None, **sizes):
    """A labelled synthetic rollout store with recorded decisions (fiper.evaluation.synthetic)."""
    from fiper.evaluation.synthetic import SyntheticTask, write_synthetic_store
    return write_synthetic_store(path, SyntheticTask(**(task or {})), seed=seed, **sizes)
'''


@dataclass(frozen=True)
class Block:
    """How one doc block runs. ``prelude`` runs in its own namespace (with ``H``, the helpers);
    only the names in ``provides`` reach the block's namespace."""

    prelude: str = ""
    provides: tuple[str, ...] = ()
    after: tuple[tuple[str, str], ...] = ()  # blocks whose code runs first in the same namespace
    files: dict[str, tuple[str, str] | str] = field(default_factory=dict)  # path -> block key (its code) or text
    replace: tuple[tuple[str, str, str], ...] = ()  # (old, new, reason)
    check: str = ""  # runs after the block, in its namespace
    copy: tuple[str, ...] = ()  # repository paths copied into the working directory (the doc names them relative to the root)
    path: bool = False  # put the working directory on sys.path (for a package the block imports)
    skip: str = ""


CHECKPOINTS = "launch/checkpoints"  # the shipped pick-and-place policy
ADAPTER = ("docs/adapters.md", "import torch")
POUR = ("docs/interventions.md", "# rewards/pour.py (written by you or by a VLM prompted with the keypoints)")

BLOCKS: dict[tuple[str, str], Block] = {
    ("README.md", "from fiper.control import MonitoredPolicy"): Block(
        prelude="""
            import envs
            policy = H.shipped_policy()
            H.tiny_monitor(policy, "runs/monitor")
            obs, _ = envs.make_env("pick_place").reset(seed=0)
        """,
        provides=("policy", "obs"), copy=(CHECKPOINTS,),
        check="""
            assert action.shape == (4,)
            assert {"alarm", "reason", "ratios", "intervention", "timing_ms"} <= set(agent.last_info), agent.last_info
        """),
    ADAPTER: Block(check="assert LatentDecoderAdapter.__init__"),
    ("docs/adapters.md", "import fiper"): Block(
        after=(ADAPTER,),
        check="assert isinstance(adapter, fiper.GenerativePolicy) and chunks.shape == (3, 32, 16, 2)"),
    ("docs/monitor.md", "from fiper.monitor import PolicyIdentity, save_monitor, load_monitor"): Block(
        prelude="""
            import torch
            sizes = dict(n_success_ood=2, n_fail_id=2, n_fail_ood=2, task=H.PICK_PLACE)
            H.rollout_store("runs/id_fit.zarr", 0, n_success_id=10, **sizes)  # as launch.stress records them (README)
            H.rollout_store("runs/id_cal.zarr", 1, n_success_id=12, **sizes)
            policy = H.shipped_policy()
            z = policy.encode({"agent_pos": torch.zeros(1, 2, 4), "object": torch.zeros(1, 2, 7)})
            chunks = policy.sample(z, 8)
        """,
        provides=("policy", "z", "chunks"), copy=(CHECKPOINTS,),
        check="assert monitor.calibrated and set(report.ratios) == {'rnd_oe', 'ace'} and isinstance(report.alarm, bool)"),
    ("docs/control_loop.md", "from fiper.control import MonitoredPolicy, RolloutRecorder, run_episode"): Block(
        prelude="""
            import envs
            policy = H.tiny_policy({"agent_pos": (2,), "object": (4,)}, 2)
            H.tiny_monitor(policy, "runs/monitor")
            env = envs.make_env("push_t", max_episode_steps=40)
            obs, _ = env.reset(seed=0)
        """,
        provides=("policy", "env", "obs"),
        check="""
            from fiper.storage import EpisodeStore
            assert {"fallback_active", "env_step"} <= set(agent.last_info)  # every step; at a decision also:
            info = next(i for i in result.infos if i["decision"])
            assert {"alarm", "reason", "ratios", "intervention", "timing_ms", "overrun"} <= set(info)
            assert {"encode", "sample", "monitor", "intervention", "total"} <= set(info["timing_ms"])
            store = EpisodeStore.open("runs/rollouts.zarr")
            assert store.n_episodes == 1 and {"embedding", "samples", "alarm", "intervention"} <= set(store.decision_keys)
        """),
    ("docs/interventions.md", "from fiper.interventions import FallbackContext, GradedResponse, KeepOut, Steering, make_fallback"): Block(
        prelude="""
            import numpy as np
            import torch
            from fiper.monitor import StepReport
            policy = H.tiny_policy({"agent_pos": (7,)}, 7)
            obs = {"agent_pos": np.zeros(7, dtype=np.float32)}
            z = policy.encode({"agent_pos": torch.zeros(1, policy.n_obs_steps, 7)})
            report = StepReport(decision=0, ratios={"rnd_oe": 1.5, "ace": 1.2}, combined_ratio=1.2, alarm=True)
            k = 0  # the step of the chunk being executed
        """,
        provides=("policy", "obs", "z", "report", "k"),
        check="assert label == 'steer' and action.shape == (7,) and response.excluded_scores == ('ace',)"),
    ("docs/interventions.md", "class Fallback(Protocol):"): Block(
        prelude="""
            from collections.abc import Mapping
            from typing import Any, Protocol
            import numpy as np
            from fiper.interventions import FallbackContext
        """,
        provides=("Mapping", "Any", "Protocol", "np", "FallbackContext"),
        check="""
            import inspect
            from fiper.interventions import Fallback as Declared
            for method in ("start", "act"):  # the excerpt states the declared protocol
                assert inspect.signature(getattr(Fallback, method)).parameters.keys() == inspect.signature(getattr(Declared, method)).parameters.keys()
        """),
    ("docs/interventions.md", "reward(trajectory: Tensor) -> Tensor      # (batch, steps, 3) in env units -> (batch,), higher is better"): Block(
        skip="a call signature written as code, not a statement"),
    POUR: Block(check="""
            t = torch.zeros(4, 5, 3)
            assert above_cup(t).shape == (4,) and make_above([0.4, 0.0, 0.3])(t).shape == (4,)
        """),
    ("docs/interventions.md", "from fiper.interventions import load_reward"): Block(
        files={"rewards/pour.py": POUR, "mypkg/__init__.py": "", "mypkg/rewards.py": POUR}, path=True,
        check="""
            import torch
            assert all(r(torch.zeros(4, 5, 3)).shape == (4,) for r in (r1, r2, r3))
        """),
    ("docs/scores.md", "from fiper.scores import ScoreFitData, make_score, score_from_state"): Block(
        prelude="""
            import numpy as np
            rng = np.random.default_rng(0)
            embeddings = rng.normal(size=(60, 8)).astype(np.float32)       # N = 60 decisions, D = 8
            samples = rng.normal(size=(60, 16, 4, 2)).astype(np.float32)   # B = 16, H = 4, A = 2
            decision_ends = np.array([20, 40, 60])
            z_t, chunks_t, Z, S = embeddings[0], samples[0], embeddings, samples
        """,
        provides=("embeddings", "samples", "decision_ends", "z_t", "chunks_t", "Z", "S"),
        replace=(('device="cuda"', 'device="cpu"', "the test machine need not have a GPU"),),
        check="assert s.shape == (60,) and score.step(z_t, chunks_t) == s_t"),
    ("docs/evaluation.md", "from fiper.evaluation import EvaluationConfig, evaluate_rollouts, summary_table, write_outputs"): Block(
        prelude="""
            sizes = dict(n_success_id=48, n_success_ood=4, n_fail_id=6, n_fail_ood=6)  # 96 ID successes: the band at 0.05 needs 95
            for seed, run in enumerate(("a", "b")):
                H.rollout_store(f"runs/{run}/rollouts.zarr", seed, **sizes)
        """,
        replace=(("EvaluationConfig(deltas=(0.05, 0.1))", "EvaluationConfig(deltas=(0.05, 0.1), progress=False)",
                  "no progress bars in the test log"),),
        check="""
            import os
            assert {"metrics.json", "report.md", "config.json"} <= set(os.listdir("results"))
        """),
    ("docs/interventions.md", "from hydra.utils import instantiate"): Block(
        copy=("launch/conf",),
        check="""
            from fiper.interventions import GradedResponse
            assert isinstance(response, GradedResponse) and response.steering is not None and response.fallback is not None
        """),
    ("docs/envs.md", "import envs"): Block(check="assert info['shift'] == 'obstacle' and obs['agent_pos'].shape == (2,)"),
    ("docs/envs.md", "class Expert(Protocol):"): Block(
        prelude="""
            from typing import Protocol
            import numpy as np
        """,
        provides=("Protocol", "np"),
        check="""
            import inspect
            from envs import Expert as Declared
            for method in ("reset", "act"):  # the excerpt states the declared protocol
                assert inspect.signature(getattr(Expert, method)).parameters.keys() == inspect.signature(getattr(Declared, method)).parameters.keys()
        """),
    ("docs/envs.md", "from fiper.collection import collect, run_episode, make_env_from_config, resolve"): Block(
        replace=(("n_episodes=100", "n_episodes=2", "100 push-T episodes take a minute"),),
        check="assert summary.saved == 2 and store.n_episodes == 2"),
    ("docs/policies.md", "import torch"): Block(
        copy=(CHECKPOINTS,), check="assert z.shape == (1, 64) and chunks.shape == (1, 256, 16, 4)"),
}


def block_spec(block: CodeBlock, workdir: Path) -> dict:
    entry = BLOCKS.get(block.key, Block())
    code = block.code
    for old, new, _reason in entry.replace:
        assert old in code, f"{block.id}: replacement target {old!r} is gone from the doc; update BLOCKS"
        code = code.replace(old, new)
    files = {path: block_by_key(src).code if isinstance(src, tuple) else src for path, src in entry.files.items()}
    return {
        "id": block.id, "doc": block.doc, "line": block.line, "code": code, "workdir": str(workdir),
        "prelude": textwrap.dedent(entry.prelude), "provides": list(entry.provides), "check": textwrap.dedent(entry.check),
        "after": [{"doc": a.doc, "line": a.line, "code": a.code} for a in map(block_by_key, entry.after)],
        "files": files, "copy": list(entry.copy), "path": entry.path,
    }


BLOCK_RUNNER = r'''
import contextlib, io, json, linecache, os, shutil, sys, time, traceback, types
import torch
torch.set_num_threads(1)
root, spec_path, out_path = sys.argv[1:4]
spec = json.load(open(spec_path))
H = types.ModuleType("doc_helpers")
exec(compile(spec["helpers"], "<doc helpers>", "exec"), H.__dict__)


def run(code, doc, line, namespace):
    path = os.path.join(root, doc)
    if path not in linecache.cache:  # tracebacks show the doc's lines
        text = open(path).read()
        linecache.cache[path] = (len(text), None, text.splitlines(True), path)
    exec(compile("\n" * (line - 1) + code, path, "exec"), namespace)


results = {}
for b in spec["blocks"]:
    start, out = time.perf_counter(), io.StringIO()
    os.makedirs(b["workdir"], exist_ok=True)
    os.chdir(b["workdir"])
    if b["path"]:
        sys.path.insert(0, b["workdir"])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            for rel in b["copy"]:
                shutil.copytree(os.path.join(root, rel), rel)
            for rel, text in b["files"].items():
                os.makedirs(os.path.dirname(rel) or ".", exist_ok=True)
                open(rel, "w").write(text)
            prelude = {"H": H, "__name__": "__doc_prelude__"}
            exec(compile(b["prelude"], "<prelude of " + b["id"] + ">", "exec"), prelude)
            namespace = {"__name__": "__main__", **{k: prelude[k] for k in b["provides"]}}
            for a in b["after"]:
                run(a["code"], a["doc"], a["line"], namespace)
            run(b["code"], b["doc"], b["line"], namespace)
            exec(compile(b["check"], "<check of " + b["id"] + ">", "exec"), namespace)
        results[b["id"]] = {"ok": True, "seconds": time.perf_counter() - start}
    except BaseException:
        results[b["id"]] = {"ok": False, "seconds": time.perf_counter() - start,
                            "error": traceback.format_exc(), "output": out.getvalue()[-3000:]}
    finally:
        if b["path"]:
            sys.path.remove(b["workdir"])
        os.chdir(root)
    json.dump(results, open(out_path, "w"))
'''


# ---------------------------------------------------------------------------------------------- launch commands
@dataclass(frozen=True)
class Command:
    where: str
    module: str
    args: tuple[str, ...]
    partial: bool = False  # the doc elides arguments ('…'): mandatory values are not checked

    @property
    def id(self) -> str:
        return f"{self.where}:{self.module}"


PLACEHOLDER = re.compile(r"<[^<>]*>")  # '<demo store>' -> x
CALL = re.compile(r"(?:\$py|\S*python3?)\s+-m\s+(launch\.\w+)(.*)")


def normalise(args: list[str]) -> tuple[tuple[str, ...], bool]:
    out, partial = [], False
    for arg in args:
        if arg in ("…", "..."):
            partial = True
            continue
        if arg.startswith("[") and arg.endswith("]") and "=" in arg and not arg.startswith("[["):
            arg = arg[1:-1]  # '[key=value]': an optional argument
        arg = re.sub(r"=\.\.\.$", "=x", arg)
        out.append(arg)
    return tuple(out), partial


def launch_commands() -> list[Command]:
    commands = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for block in code_blocks(doc):
            if block.lang not in ("", "bash", "sh", "shell", "console"):
                continue
            start, line = 0, ""
            for offset, raw in enumerate(block.code.splitlines()):
                start, line = (start if line else offset), line + raw
                if line.endswith("\\"):  # continued on the next line
                    line = line[:-1] + " "
                    continue
                call = CALL.search(line)
                if call:
                    args, partial = normalise(shlex.split(PLACEHOLDER.sub("x", call.group(2)), comments=True))
                    commands.append(Command(f"{doc}:{block.line + start}", call.group(1), args, partial))
                line = ""
        for span in re.finditer(r"`((?:\$py|python) -m launch\.[^`]*)`", text):
            call = CALL.search(" ".join(span.group(1).split()))
            if call and ("=" in call.group(2) or "--config-name" in call.group(2)):
                args, partial = normalise(shlex.split(PLACEHOLDER.sub("x", call.group(2))))
                line = text.count("\n", 0, span.start()) + 1
                commands.append(Command(f"{doc}:{line}", call.group(1), args, partial))
    return commands


# Overrides the prose quotes on their own (no full command), composed with what makes them complete.
COMMAND_FRAGMENTS = [
    Command("docs/control_loop.md (factories)", "launch.stress",
            ("policy_dir=x", "out=x", "+factories.obstacle=my_pkg.envs:make_with_obstacle")),
    Command("docs/policies.md (policy fields)", "launch.train",
            ("data=x", "out=x", "policy=diffusion_unet", "policy.horizon=8", "policy.obs_keys=[agent_pos]")),
    Command("docs/evaluation.md (+method)", "launch.evaluate", ("rollouts=x", "out=x", "+method@methods.mine=fiper")),
    Command("docs/sweeps.md (split by shift)", "launch.stress",
            ("-m", "policy_dir=x", "cells=[[obstacle,[1.0]]],[[push,[1.0]]]", "out=runs/sweep/${hydra.job.num}.zarr")),
    Command("docs/sweeps.md (GPU on SLURM)", "launch.stress",
            ("policy_dir=x", "out=x", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=1", "device=cuda")),
    Command("docs/architecture.md (threads)", "launch.fit", ("data=x", "out=x", "cpu_threads=null")),
    Command("docs/architecture.md (training threads)", "launch.train", ("data=x", "out=x", "train.cpu_threads=1")),
    Command("docs/monitor.md (joint)", "launch.calibrate", ("data=x", "monitor_dir=x", "joint=true")),
]

COMMAND_RUNNER = r'''
import contextlib, io, json, re, runpy, sys
from hydra.core.override_parser.overrides_parser import OverridesParser

spec_path, out_path = sys.argv[1:3]
parser = OverridesParser.create()
results = {}
for cmd in json.loads(open(spec_path).read()):
    args = list(cmd["args"])
    if "-m" in args or "--multirun" in args:  # compose the sweep's first point
        args = [a for a in args if a not in ("-m", "--multirun")]
        plain, skip_next = [], False
        for a in args:  # overrides only: no flags, no flag values
            if not skip_next and not a.startswith("-"):
                plain.append(a)
            skip_next = a in ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd")
        for arg, o in zip(plain, parser.parse_overrides(plain)):
            if o.is_sweep_override():
                args[args.index(arg)] = f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"
    flags = ["--cfg", "job"] + ([] if "${hydra." in " ".join(args) else ["--resolve"])
    sys.argv = [cmd["module"], *flags, *args]
    out, code = io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_module(cmd["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code or 0
    except BaseException as err:
        code, _ = 1, out.write(repr(err))
    text = out.getvalue()
    missing = [] if cmd["partial"] else re.findall(r"^\s*([\w.]+): '?\?\?\?'?\s*$", text, re.M)
    results[cmd["id"]] = {"rc": code, "missing": missing, "argv": sys.argv, "output": text[-2000:]}
    json.dump(results, open(out_path, "w"))
'''


# ---------------------------------------------------------------------------------------------- running both
def _env() -> dict[str, str]:
    return {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


@pytest.fixture(scope="module")
def doc_runs(tmp_path_factory):
    """Run every executable block and compose every command, in two subprocesses side by side."""
    tmp = tmp_path_factory.mktemp("docs_examples")
    blocks = [b for b in python_blocks() if not BLOCKS.get(b.key, Block()).skip]
    spec = {"helpers": HELPERS, "blocks": [block_spec(b, tmp / "work" / f"{i:02d}") for i, b in enumerate(blocks)]}
    commands = launch_commands() + COMMAND_FRAGMENTS
    (tmp / "blocks.json").write_text(json.dumps(spec))
    (tmp / "commands.json").write_text(json.dumps([
        {"id": c.id, "module": c.module, "args": list(c.args), "partial": c.partial} for c in commands]))
    runners = {"blocks": (BLOCK_RUNNER, str(ROOT)), "commands": (COMMAND_RUNNER,)}
    procs, logs = {}, {}
    for name, (runner, *args) in runners.items():  # logs go to files: two pipes could fill while one is read
        logs[name] = open(tmp / f"{name}.log", "w")
        procs[name] = subprocess.Popen([sys.executable, "-c", runner, *args, str(tmp / f"{name}.json"), str(tmp / f"{name}_out.json")],
                                       cwd=tmp, env=_env(), stdout=logs[name], stderr=subprocess.STDOUT)
    try:
        for proc in procs.values():
            proc.wait(timeout=TIMEOUT_S)
    finally:
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.kill()
            logs[name].close()
    outputs = {}
    for name, proc in procs.items():
        path = tmp / f"{name}_out.json"
        outputs[name] = json.loads(path.read_text()) if path.exists() else {}
        outputs[f"{name}_log"] = f"exit {proc.returncode}\n{(tmp / f'{name}.log').read_text()[-4000:]}"
    return outputs


@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: b.id)
def test_python_block_runs(block, doc_runs):
    entry = BLOCKS.get(block.key, Block())
    if entry.skip:
        pytest.skip(entry.skip)
    result = doc_runs["blocks"].get(block.id)
    assert result is not None, f"{block.id} did not run:\n{doc_runs['blocks_log']}"
    assert result["ok"], f"{block.id} failed:\n{result['error']}\n--- output ---\n{result['output']}"


@pytest.mark.parametrize("command", launch_commands() + COMMAND_FRAGMENTS, ids=lambda c: c.id)
def test_launch_command_composes(command, doc_runs):
    result = doc_runs["commands"].get(command.id)
    assert result is not None, f"{command.id} did not run:\n{doc_runs['commands_log']}"
    assert result["rc"] == 0, f"{' '.join(result['argv'])} does not compose:\n{result['output']}"
    assert not result["missing"], f"{' '.join(result['argv'])} leaves mandatory values unset: {result['missing']}"


def test_block_registry_matches_the_docs():
    """Every BLOCKS entry names one python block of the docs, so a stale entry cannot hide."""
    keys = [b.key for b in python_blocks()]
    assert all(keys.count(k) == 1 for k in keys), "two blocks start with the same line: BLOCKS could not tell them apart"
    assert not set(BLOCKS) - set(keys), f"BLOCKS entries without a doc block: {sorted(set(BLOCKS) - set(keys))}"


def test_extraction_finds_the_examples():
    """The parsers see the examples (a broken fence or regex would otherwise pass vacuously)."""
    docs = {b.doc for b in python_blocks()}
    assert {"README.md", "docs/monitor.md", "docs/control_loop.md", "docs/interventions.md", "docs/scores.md"} <= docs
    commands = launch_commands()
    assert len({c.module for c in commands}) == 7 and len(commands) >= 30
    ids = [c.id for c in commands + COMMAND_FRAGMENTS]
    assert len(ids) == len(set(ids)), "two commands share an id"
