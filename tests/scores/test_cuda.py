"""On a CUDA machine: every score fits and scores on the GPU and moves to the CPU intact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from score_helpers import TINY, Decisions

from fiper.scores import SCORES, make_score, score_from_state

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name", sorted(SCORES))
def test_fit_and_score_on_cuda_then_load_on_cpu(name):
    data, new = Decisions(seed=1), Decisions(seed=2)
    fit = data.fit_data()
    fit.device = torch.device("cuda")
    score = make_score(name, **TINY[name]).fit(fit)
    seen = "observation" in score.needs  # a raw-observation score takes the observations by keyword
    reads_samples = "samples" in score.needs  # and the samples too where it reads them (dynamics_residual)

    def offline(s):
        if seen:
            return s.score_offline(None, new.samples if reads_samples else None, new.decision_ends, observations=new.observations)
        return s.score_offline(new.embeddings, new.samples, new.decision_ends)

    def step(i):
        if seen:
            batch = torch.from_numpy(new.samples[i]).cuda() if reads_samples else None
            return score.step(None, batch, observation={k: torch.from_numpy(np.ascontiguousarray(v[i])).cuda() for k, v in new.observations.items()})
        return score.step(torch.from_numpy(new.embeddings[i]).cuda(), torch.from_numpy(new.samples[i]).cuda())

    on_gpu = offline(score)
    online = []
    for start, end in zip(np.r_[0, new.decision_ends[:-1]], new.decision_ends):
        score.reset()
        online += [step(i) for i in range(start, end)]
    np.testing.assert_allclose(online, on_gpu, rtol=1e-5, atol=1e-5)
    tensors, config = score.state()
    assert all(t.device.type == "cpu" for t in tensors.values())
    on_cpu = offline(score_from_state(tensors, config, device="cpu"))
    np.testing.assert_allclose(on_cpu, on_gpu, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(offline(score.to("cpu")), on_cpu, rtol=0, atol=0)
