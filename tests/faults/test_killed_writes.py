"""A process killed while writing its outputs leaves each file old or new, never cut short, and a rerun resumes.

Each kill is real and lands at a known point: the child process dies by SIGKILL before its k-th rename, or
by the kernel's file-size limit (SIGXFSZ) in the middle of writing a file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fiper.atomic import COMMIT_RECORD, commit_files, finish_commit, write_atomic
from fiper.evaluation.render.outcome import put_section
from fiper.fingerprint import make_fingerprint
from launch.stages import Stages
from policies import train_policy
from policies.toy_data import BimodalTask, make_bimodal_demos, toy_policy_config, toy_train_config
from policies.training import has_checkpoint

REPO = Path(__file__).resolve().parents[2]

PRELUDE = textwrap.dedent(
    """
    import os, resource, signal, sys
    _replace, _renames = os.replace, [0]

    def die_before_rename(k):
        def replace(*args, **kwargs):
            _renames[0] += 1
            if _renames[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return _replace(*args, **kwargs)
        os.replace = replace

    def die_past_bytes(n):
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # python ignores it; the kernel's default ends the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    """
)


def run_killed(code: str, *args: object) -> subprocess.CompletedProcess:
    """Run ``code`` after the prelude in a fresh interpreter; it must end by a signal."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MUJOCO_GL": "disable"}
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode < 0, f"the child was not killed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc


def test_a_file_killed_mid_write_keeps_its_old_contents(tmp_path):
    path = tmp_path / "metrics.json"
    write_atomic(path, json.dumps({"old": list(range(50))}))
    before = path.read_text()
    proc = run_killed("""
        from fiper.atomic import write_atomic
        die_past_bytes(300)
        write_atomic(sys.argv[1], '{"new": [' + ', '.join(map(str, range(5000))) + ']}')
        """, path)
    assert proc.returncode == -signal.SIGXFSZ
    assert path.read_text() == before


def test_a_section_put_into_a_report_by_a_killed_process_leaves_the_report_whole(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# Evaluation\n\n" + "".join(f"| row {i} | {i / 7:.4f} |\n" for i in range(400)))
    before = report.read_text()
    run_killed("""
        from fiper.evaluation.render.outcome import put_section
        die_past_bytes(2000)
        put_section(sys.argv[1], "## What acting on the alarm achieved\\n\\nthe table")
        """, report)
    assert report.read_text() == before
    put_section(report, "## What acting on the alarm achieved\n\nthe table")
    assert report.read_text().startswith(before) and report.read_text().endswith("the table\n")


def test_a_stage_killed_while_recording_it_finished_resumes_its_output_instead_of_removing_it(tmp_path):
    output = tmp_path / "stress.zarr"
    fingerprint = make_fingerprint({"config": {"cells": ["x" * 40] * 40}})
    run_killed("""
        import json
        from pathlib import Path
        from launch.stages import Stages
        output = Path(sys.argv[1])
        def work():
            output.write_text("episode 0\\n")
            die_past_bytes(output.stat().st_size + 500)  # the pending record is written: only the done record is cut
        Stages(output.parent).run("stress rollouts", output, json.loads(sys.argv[2]), work)
        """, output, json.dumps(fingerprint))
    assert output.read_text() == "episode 0\n"
    assert not Stages.marker(output).exists()

    def resume() -> None:
        output.write_text(output.read_text() + "episode 1\n")

    Stages(tmp_path).run("stress rollouts", output, fingerprint, resume)
    assert output.read_text() == "episode 0\nepisode 1\n"  # the episodes recorded before the kill are kept
    assert Stages(tmp_path).recorded(output) == fingerprint


def test_a_commit_killed_before_its_record_keeps_the_old_files_and_after_it_completes(tmp_path):
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text("old")
    staged = {"a.json": lambda p: p.write_text("new"), "b.json": lambda p: p.write_text("new")}
    run_killed("""
        from fiper.atomic import commit_files
        die_before_rename(1)
        commit_files(sys.argv[1], {n: (lambda p: p.write_text("new")) for n in ("a.json", "b.json")})
        """, tmp_path)
    finish_commit(tmp_path)
    assert [(tmp_path / n).read_text() for n in staged] == ["old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
    run_killed("""
        from fiper.atomic import commit_files
        die_before_rename(3)
        commit_files(sys.argv[1], {n: (lambda p: p.write_text("new")) for n in ("a.json", "b.json")})
        """, tmp_path)
    assert (tmp_path / COMMIT_RECORD).exists() and (tmp_path / "a.json").read_text() == "new"
    finish_commit(tmp_path)
    assert [(tmp_path / n).read_text() for n in staged] == ["new", "new"]
    commit_files(tmp_path, staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


TRAIN = """
    from policies import train_policy
    from policies.toy_data import toy_policy_config, toy_train_config
    die_before_rename(int(sys.argv[3]))
    config = toy_train_config(toy_policy_config("flow", "mlp"), 6, batch_size=8, val_every=2, checkpoint_every=2,
                              device="cpu", progress=False)
    train_policy(sys.argv[1], config, sys.argv[2])
    """


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    return make_bimodal_demos(tmp_path_factory.mktemp("demos") / "demos.zarr", n_episodes=6, task=BimodalTask(), seed=0).path


def _config():
    return toy_train_config(toy_policy_config("flow", "mlp"), 6, batch_size=8, val_every=2, checkpoint_every=2,
                            device="cpu", progress=False)


@pytest.fixture(scope="module")
def straight(demos, tmp_path_factory):
    return train_policy(demos, _config(), tmp_path_factory.mktemp("straight") / "run").policy.state_dict()


@pytest.mark.parametrize("kill_before_rename", [2, 6, 8])
def test_training_killed_while_saving_a_checkpoint_resumes_to_the_weights_of_an_uninterrupted_run(
        demos, straight, tmp_path, kill_before_rename):
    out = tmp_path / "run"
    run_killed(TRAIN, demos, out, kill_before_rename)
    assert has_checkpoint(out)  # the save the kill interrupted is completed or undone, never left half done
    resumed = train_policy(demos, _config(), out, resume=True)
    assert resumed.step == 6
    for key, value in straight.items():
        torch.testing.assert_close(resumed.policy.state_dict()[key], value, msg=key)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
