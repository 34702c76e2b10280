"""A steer's reward must read the action entries the fallbacks' layout names as positions (integrated when they are
velocities): launch.stress and launch.act refuse a mismatch before anything runs instead of steering on other entries."""

from __future__ import annotations

import pytest

from fiper.interventions import FallbackContext, response_from_config
from fiper.interventions.layout import check_steering_layout


def steer(**steering):
    return response_from_config({"steering": {"reward": {"name": "keep_out", "center": [0.0, 0.0], "radius": 0.05},
                                              **steering}, "fallback": {"name": "hold"}})


def test_a_steer_on_entries_that_are_not_the_position_targets_is_refused_naming_the_setting():
    context = FallbackContext(4, position_dims=[2, 3], gripper_dims=[0])  # [gripper, yaw, x, y]
    with pytest.raises(ValueError, match=r"response_configs.steer.steering.position_dims=\[0, 1\] are not position entries "
                                         r".*set response_configs.steer.steering.position_dims=\[2, 3\]"):
        check_steering_layout(steer(), context, "response_configs.steer.steering")
    check_steering_layout(steer(position_dims=[2, 3]), context, "response_configs.steer.steering")
    check_steering_layout(steer(), FallbackContext(3, position_dims=[0, 1, 2]), "s")  # x, y of x, y, z: a cylinder's axis


def test_velocity_actions_must_be_steered_as_velocities():
    context = FallbackContext(2, position_dims=[0, 1], action_mode="velocity", control_period_s=0.1)
    with pytest.raises(ValueError, match=r"velocity_actions=False but context.action_mode='velocity'.*velocity_actions=true"):
        check_steering_layout(steer(), context, "response.steering")
    check_steering_layout(steer(velocity_actions=True), context, "response.steering")
    with pytest.raises(ValueError, match=r"read positions as velocities"):
        check_steering_layout(steer(velocity_actions=True), FallbackContext(2, position_dims=[0, 1]), "response.steering")


def test_a_velocity_steer_that_cannot_know_where_its_paths_start_is_refused_naming_the_setting():
    head = (r"response.steering.velocity_actions=true scores each chunk on the path the robot would follow: its measured "
            r"position plus the velocities integrated over the env's control period")
    with pytest.raises(ValueError, match=head + r", and it lacks the seconds per env step \(FallbackContext control_period_s="):
        check_steering_layout(steer(velocity_actions=True), FallbackContext(2, [0, 1], action_mode="velocity"), "response.steering")
    unmeasured = FallbackContext(2, [0, 1], action_mode="velocity", agent_pos_key=None, control_period_s=0.1)
    with pytest.raises(ValueError, match=head + r", and it lacks the observation key measuring the position \(context.agent_pos_key"):
        check_steering_layout(steer(velocity_actions=True), unmeasured, "response.steering")
    with pytest.raises(ValueError, match=head + r", and no FallbackContext says where the position is measured"):
        check_steering_layout(steer(velocity_actions=True), None, "response.steering")
    context = FallbackContext(2, [0, 1], action_mode="velocity", agent_pos_key="pos", control_period_s=0.1)
    with pytest.raises(ValueError, match=r"the observation has no key 'pos' \(it has \{'agent_pos': \(2,\)\}\): name the key"):
        check_steering_layout(steer(velocity_actions=True), context, "response.steering", obs={"agent_pos": [0.0, 0.0]})
    check_steering_layout(steer(velocity_actions=True), context, "response.steering", obs={"pos": [0.0, 0.0]})


def test_responses_without_steering_or_without_a_layout_pass():
    hold = response_from_config({"fallback": {"name": "hold"}})
    check_steering_layout(hold, FallbackContext(4, position_dims=[2, 3]), "s")
    check_steering_layout(steer(), None, "s")


def test_a_reward_of_ones_own_given_fewer_position_entries_than_the_action_has_gets_a_note(capsys):
    own = response_from_config({"steering": {"reward": {"name": "above_table", "z_min": 0.1}}, "fallback": {"name": "hold"}})
    check_steering_layout(own, FallbackContext(4, position_dims=[0, 1, 2]), "response.steering")
    assert "response.steering.position_dims=[0, 1] give the reward 2 of the action's position entries [0, 1, 2]: the " \
           "trajectory it reads has z = 0 (entry [2] unseen)" in capsys.readouterr().out
    check_steering_layout(steer(), FallbackContext(4, position_dims=[0, 1, 2]), "s")  # a cylinder keep-out: no note
    steered = response_from_config({"steering": {"reward": {"name": "above_table", "z_min": 0.1}, "position_dims": [0, 1, 2]},
                                    "fallback": {"name": "hold"}})
    check_steering_layout(steered, FallbackContext(4, position_dims=[0, 1, 2]), "s")
    assert capsys.readouterr().out == ""


def test_steering_built_by_hand_in_ones_own_loop_is_checked_by_monitored_policy(recwarn):
    from fiper.control import MonitoredPolicy
    from pusht_policy import tiny_pusht_policy

    def own():  # reads one of the two position entries
        return response_from_config({"steering": {"reward": {"name": "above_table", "z_min": 0.1}, "position_dims": [0]},
                                     "fallback": {"name": "hold"}})

    policy, xy = tiny_pusht_policy(), FallbackContext(2, position_dims=[0, 1])
    with pytest.warns(UserWarning, match=r"the response's steering.position_dims=\[0\] give the reward 1 of the action's "
                                         r"position entries \[0, 1\]: the trajectory it reads has z = 0"):
        MonitoredPolicy(policy, None, response=own(), context=xy)
    with pytest.raises(ValueError, match=r"the response's steering.position_dims=\[0, 1\] are not position entries"):
        MonitoredPolicy(policy, None, response=steer(), context=FallbackContext(2, position_dims=[1]))
    checked, said = own(), []
    check_steering_layout(checked, xy, "response.steering", note=said.append)  # a launcher said it: the loop does not again
    assert len(said) == 1
    recwarn.clear()
    MonitoredPolicy(policy, None, response=checked, context=xy)
    MonitoredPolicy(policy, None, response=steer(), context=xy)
    assert not [w for w in recwarn if "position_dims" in str(w.message)]
