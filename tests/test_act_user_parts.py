"""launch.act with a fallback, a reward, a response and a hand-over callback of one's own, each named by its file path
in the overrides: each one acts in its arm, and a wrong one is refused, or its fault named, with the fix."""

from __future__ import annotations

import numpy as np
import pytest

from fiper.storage import EpisodeStore
from test_act_launch import ALARM_DECISION, NOMINAL, config, run_dirs  # noqa: F401  (run_dirs: the module's fixture)
from launch import act
from user_parts import PARTS as USER_PARTS

PARTS = USER_PARTS + '''
CALLS = []


class Broken(Nudge):
    def act(self, obs, context):
        return np.full(context.action_dim, np.nan)


def called(obs, context):
    CALLS.append(1)
    return np.full(context.action_dim, 0.125)
'''


def test_parts_of_ones_own_act_in_their_arms_and_wrong_ones_are_named(run_dirs, tmp_path):  # noqa: F811
    parts = tmp_path / "my_parts.py"
    parts.write_text(PARTS)
    out = tmp_path / "act"
    arms = [f"+response_configs.nudge={{fallback: {{name: '{parts}:Nudge', dx: 0.01}}}}",
            f"+response_configs.mine={{kind: '{parts}:steer_then_nudge', dx: 0.01}}",
            f"+response_configs.guided={{max_steer_decisions: 1000, steering: {{reward: {{name: '{parts}:left_of'}}, "
            "position_dims: [0, 1], num_particles: 8}, fallback: {name: hold}}",
            f"+response_configs.asked={{preset: hand_over, fallback: {{callback: '{parts}:called'}}}}"]
    report = act.run(config(run_dirs, out, NOMINAL, "seeds.count=1", "responses=[nudge,mine,guided,asked]", *arms))
    # the steering arms' own reward, scored on the chunks each run executed; the fallback arms show none
    assert report.overall["nudge"].reward is None and report.overall["asked"].reward is None
    guided = report.overall["guided"].reward
    assert guided.reward == f"{parts}:left_of" and guided.note == "" and guided.episodes == 1

    def scored(arm):  # left_of on the action's x entry, per decision's env step
        dec = EpisodeStore.open(out / f"{arm}.zarr").episode_decisions(0, ["executed", "env_step"])
        return {int(t): -np.maximum(c[:, 0], 0).sum() for t, c in zip(dec["env_step"], dec["executed"]) if np.isfinite(c).all()}

    with_, without = scored("guided"), scored("without")
    both = sorted(set(with_) & set(without))  # the env steps at which both runs executed a chunk
    assert len(with_) > len(both) and guided.decisions == len(both)  # the runs' lengths differ: the rest has no counterpart
    assert guided.difference == pytest.approx(np.mean([with_[t] - without[t] for t in both]), rel=1e-5, abs=1e-7)
    assert report.overall["mine"].reward.decisions == ALARM_DECISION + 1  # the nudge's decision executed no chunk
    labels, actions = {}, {}
    for name in ("nudge", "mine", "guided", "asked"):
        store = EpisodeStore.open(out / f"{name}.zarr")
        labels[name] = [str(x) for x in store.episode_decisions(0, ["intervention"])["intervention"]]
        actions[name] = store.episode(0, ["action"])["action"]
    step = 4 * ALARM_DECISION  # the alarm's env step: 4 actions per decision
    assert labels["nudge"] == ["none"] * ALARM_DECISION + ["fallback:nudge"]
    assert np.allclose(actions["nudge"][step:, 0] - actions["nudge"][step - 1, 0], 0.01)  # the last target, moved by dx
    assert labels["mine"] == ["none"] * ALARM_DECISION + ["steer", "fallback:nudge"]
    assert set(labels["guided"][ALARM_DECISION:]) == {"steer"} and len(labels["guided"]) > ALARM_DECISION + 1
    assert labels["asked"] == ["none"] * ALARM_DECISION + ["fallback:hand_over"]
    assert (actions["asked"][step:] == 0.125).all()  # the callback's answer

    bad = [("responses=[x]", "+response_configs.x={fallback: {name: nudgee}}", r"response_configs.x cannot be built: unknown "
            r"fallback 'nudgee'.*import path 'path/to/file.py:name'"),
           ("responses=[x]", f"+response_configs.x={{fallback: {{name: '{parts}x:Nudge'}}}}", r"cannot be loaded: FileNotFound"),
           ("responses=[x]", f"+response_configs.x={{fallback: {{name: '{parts}:Nudge', dy: 1}}}}", r"with \(dy\).*\(dx=0.0\)"),
           ("responses=[x]", f"+response_configs.x={{preset: hand_over, fallback: {{callback: '{parts}:left_of'}}}}",
            r"hand-over callback .* cannot be called with \(<value>, <value>\)")]
    for names, entry, words in bad:
        with pytest.raises(ValueError, match=words):
            act.run(config(run_dirs, tmp_path / "bad", NOMINAL, "seeds.count=1", names, entry))
        assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match=r"the fallback 'nudge' gave no safe action.*fix the fallback of response 'broken' "
                                         r"\(response_configs.broken\)"):
        act.run(config(run_dirs, tmp_path / "broken", NOMINAL, "seeds.count=1", "responses=[broken]",
                       f"+response_configs.broken={{fallback: {{name: '{parts}:Broken'}}}}"))
