"""A pipeline run folder written by an earlier fiper (markers without a fingerprint, or another source digest): the
rerun keeps every earlier output under run_dir/replaced/ instead of deleting it."""

from __future__ import annotations

import json
from pathlib import Path

from fiper.fingerprint import make_fingerprint
from launch.pipeline import Stages


def _store(path: Path, text: str) -> None:
    path.mkdir(parents=True)
    (path / "episode.bin").write_text(text)


def test_a_marker_without_a_fingerprint_reruns_and_keeps_the_earlier_store(tmp_path, capsys):
    run_dir = tmp_path / "run"
    out = run_dir / "stress.zarr"
    _store(out, "hours of rollouts")
    (run_dir / "stress.zarr.done").write_text("")  # the empty marker earlier versions wrote
    Stages(run_dir).run("stress rollouts", out, make_fingerprint({"config": {"seeds": 4}}), lambda: _store(out, "new"))
    log = capsys.readouterr().out
    assert "(no fingerprint recorded); rerunning" in log and (out / "episode.bin").read_text() == "new"
    [kept] = (run_dir / "replaced").glob("*/stress.zarr")
    assert (kept / "episode.bin").read_text() == "hours of rollouts" and f"kept at {kept}" in log
    assert kept.with_name("stress.zarr.done").read_text() == ""
    assert json.loads((run_dir / "stress.zarr.done").read_text())["fingerprint"]["values"]["config.seeds"] == 4


def test_a_source_change_and_an_unmarked_output_keep_each_earlier_output(tmp_path, capsys):
    run_dir = tmp_path / "run"
    out, stages = run_dir / "demos.zarr", Stages(run_dir)
    run_dir.mkdir()
    for i, code in enumerate(("sha256:old", "sha256:new", "sha256:newer")):
        (run_dir / "demos.zarr.done").unlink(missing_ok=True) if i == 2 else None  # the last: an output without its marker
        stages.run("collect", out, make_fingerprint({"config": {"n": 2}, "code": {"fiper/x.py": code}}),
                   lambda i=i: _store(out, f"demos {i}"))
    log = capsys.readouterr().out
    assert "only source files changed" in log and "was made by different settings or an older run" in log
    kept = sorted(p.read_text() for p in (run_dir / "replaced").glob("*/demos.zarr*/episode.bin"))
    assert kept == ["demos 0", "demos 1"] and (out / "episode.bin").read_text() == "demos 2"
    assert len(list((run_dir / "replaced").iterdir())) == 1  # one folder per pipeline run


def test_keep_reuses_a_stage_whose_record_lacks_a_setting_added_later_as_null_and_no_other(tmp_path, capsys):
    run_dir, runs = tmp_path / "run", []
    run_dir.mkdir()
    out = run_dir / "stress.zarr"

    def run(config: dict, code: str, mode: str = "keep") -> None:
        Stages(run_dir, mode).run("stress rollouts", out, make_fingerprint({"config": config, "code": {"fiper/x.py": code}}),
                                  lambda: (runs.append(code), _store(out, code)))

    run({"seeds": 4}, "old")
    run({"seeds": 4, "context": {"agent_pos_dims": None}}, "new")  # an earlier version's record, a setting added since
    log = capsys.readouterr().out
    assert runs == ["old"] and "kept (code_changes=keep)" in log and "settings added since, at values that do what the old code did: config.context.agent_pos_dims" in log
    run({"seeds": 4, "context": {"agent_pos_dims": None}}, "new", "rerun")  # the default reruns it, keeping the earlier store
    assert runs == ["old", "new"] and len(list((run_dir / "replaced").glob("*/stress.zarr"))) == 1
    capsys.readouterr()
    run({"seeds": 4, "context": {"agent_pos_dims": None}, "failed_demos": "keep"}, "newer")  # what earlier versions did
    assert runs == ["old", "new"] and "kept (code_changes=keep)" in capsys.readouterr().out
    run({"seeds": 4, "context": {"agent_pos_dims": None}, "failed_demos": "skip"}, "newer")  # another value is a change
    assert runs == ["old", "new", "newer"] and "config.failed_demos: (absent) -> \"skip\"" in capsys.readouterr().out


def test_keep_reuses_a_stage_whose_record_holds_a_renamed_setting_as_null_and_no_other(tmp_path, capsys):
    run_dir, runs = tmp_path / "run", []
    run_dir.mkdir()
    out = run_dir / "stress.zarr"

    def run(config: dict, code: str) -> None:
        Stages(run_dir, "keep").run("stress rollouts", out, make_fingerprint({"config": config, "code": {"fiper/x.py": code}}),
                                    lambda: (runs.append(code), _store(out, code)))

    run({"seeds": 4, "intervention": None}, "old")
    run({"seeds": 4, "response": None}, "new")  # the setting under another name, off in both
    log = capsys.readouterr().out
    assert runs == ["old"] and "settings no longer read, recorded as null: config.intervention" in log
    run({"seeds": 4, "response": "hold"}, "newer")  # set: a change, never kept
    assert runs == ["old", "newer"] and 'config.response: (absent) -> "hold"' in capsys.readouterr().out


def test_the_pipeline_says_what_the_replaced_outputs_keep_and_nothing_without_them(tmp_path, capsys):
    from launch.stages import replaced_note

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert replaced_note(run_dir) is None
    out = run_dir / "demos.zarr"
    for code in ("old", "new", "newer"):  # two reruns, each setting the earlier store aside
        Stages(run_dir).run("collect", out, make_fingerprint({"config": {"n": 2}, "code": {"fiper/x.py": code}}),
                            lambda code=code: (_store(out, code * 1000)))
    note = replaced_note(run_dir)
    oldest = min(p.name for p in (run_dir / "replaced").iterdir())
    assert f"keeps 0.00 GB: 2 outputs that reruns replaced, set aside since {oldest}; nothing deletes them" in note
