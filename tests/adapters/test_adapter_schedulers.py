"""A scheduler the diffusers adapter cannot drive is refused when the adapter is built, naming what to do instead."""

from __future__ import annotations

import pytest
from adapter_helpers import fiper_as_diffusers
from external_policies import CHECKPOINT

from fiper.adapters import require_diffusers
from policies import load_policy


def test_a_flow_matching_scheduler_is_refused_naming_an_adapter_of_its_own():
    flow = require_diffusers().FlowMatchEulerDiscreteScheduler(num_train_timesteps=100)
    with pytest.raises(TypeError, match=r"FlowMatchEulerDiscreteScheduler has no \['alphas_cumprod'\].*flow-matching sampler"
                                        r".*adapter of its own \(docs/adapters.md"):
        fiper_as_diffusers(load_policy(CHECKPOINT, device="cpu"), scheduler=flow)
