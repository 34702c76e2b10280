"""Acting on an alarm: fallbacks, differentiable reward programs, VLS-style steering, graded response.

See docs/interventions.md. Everything a user plugs in is a small Protocol: ``Fallback``
(start/act), ``RewardProgram`` (trajectory (batch, steps, 3) -> reward (batch,)).
"""

from fiper.interventions.building import RESPONSES, register_response, reward_from_config, response_from_config
from fiper.interventions.context import FallbackContext
from fiper.interventions.fallbacks import (
    FALLBACKS,
    Fallback,
    HandOver,
    HoldPosition,
    Retreat,
    SafeController,
    Stop,
    make_fallback,
    register_fallback,
)
from fiper.interventions.graded import GradedResponse
from fiper.interventions.loading import load_object
from fiper.interventions.progress import StageTracker
from fiper.interventions.rewards import (
    REWARDS,
    AboveTable,
    InWorkspace,
    KeepOut,
    Reach,
    RewardProgram,
    WeightedSum,
    compose,
    make_reward,
    register_reward,
)
from fiper.interventions.return_retry import ReturnAndRetry
from fiper.interventions.scene import SceneAware, SceneKeepOut, bind_scene, scene_obstacles
from fiper.interventions.steering import SteerOutput, Steering, SteeringConfig
from fiper.interventions.start_poses import StartPoses
from fiper.interventions.trajectory import CheckedReward, lift_chunks, load_reward

__all__ = [
    "RESPONSES",
    "register_response",
    "response_from_config",
    "reward_from_config",
    "ReturnAndRetry",
    "StartPoses",
    "FALLBACKS",
    "REWARDS",
    "AboveTable",
    "CheckedReward",
    "Fallback",
    "FallbackContext",
    "GradedResponse",
    "HandOver",
    "HoldPosition",
    "InWorkspace",
    "KeepOut",
    "Reach",
    "Retreat",
    "RewardProgram",
    "SafeController",
    "SceneAware",
    "SceneKeepOut",
    "StageTracker",
    "SteerOutput",
    "Steering",
    "SteeringConfig",
    "Stop",
    "WeightedSum",
    "bind_scene",
    "compose",
    "lift_chunks",
    "load_object",
    "load_reward",
    "make_fallback",
    "make_reward",
    "register_fallback",
    "register_reward",
    "scene_obstacles",
]
