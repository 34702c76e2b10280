"""launch.job_directory.RunInLaunchDirectory: a job runs in the directory its sweep was launched from, or
says why not, and the worker's own directory is restored after it."""

from __future__ import annotations

import logging
import os

from omegaconf import OmegaConf

from launch.job_directory import RunInLaunchDirectory


def _config(cwd) -> OmegaConf:
    return OmegaConf.create({"hydra": {"runtime": {"cwd": str(cwd)}}})


def test_the_job_runs_in_the_launch_directory_and_the_worker_gets_its_own_back(tmp_path, monkeypatch):
    worker, launched = tmp_path / "worker", tmp_path / "launched"
    worker.mkdir(), launched.mkdir()
    monkeypatch.chdir(worker)
    callback = RunInLaunchDirectory()
    callback.on_job_start(config=_config(launched))
    assert os.getcwd() == str(launched)
    callback.on_job_end(config=_config(launched), job_return=None)
    assert os.getcwd() == str(worker)


def test_a_node_without_the_launch_directory_warns_and_stays(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    callback = RunInLaunchDirectory()
    with caplog.at_level(logging.WARNING, logger="launch.job_directory"):
        callback.on_job_start(config=_config("/nonexistent/launch/dir"))
    assert os.getcwd() == str(tmp_path)
    assert "launched from /nonexistent/launch/dir, which does not exist on" in caplog.text
    assert "Give absolute paths on a filesystem every node mounts" in caplog.text
    callback.on_job_end(config=_config("/nonexistent/launch/dir"), job_return=None)
    assert os.getcwd() == str(tmp_path)
