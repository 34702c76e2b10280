"""The example adapter in docs/adapters.md, run verbatim: a plain torch module joins fiper by the protocol."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fiper.protocol import GenerativePolicy
from fiper.storage import EpisodeStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"


def adapter_class():
    text = DOC.read_text()
    section = text[text.index("## A complete example"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["LatentDecoderAdapter"]


def make_adapter(horizon=8, action_dim=2, embed=16, latent=4):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(2 * 2, 32), nn.Mish(), nn.Linear(32, embed))
    decoder = nn.Sequential(nn.Linear(embed + latent, 64), nn.Mish(), nn.Linear(64, horizon * action_dim))
    return adapter_class()(encoder, decoder, obs_key="agent_pos", obs_dim=2, n_obs_steps=2, horizon=horizon,
                           n_action_steps=4, action_dim=action_dim, embedding_dim=embed, latent_dim=latent)


def test_doc_adapter_satisfies_the_protocol_and_its_shapes():
    adapter = make_adapter()
    assert isinstance(adapter, GenerativePolicy)
    obs = {"agent_pos": torch.randn(3, 2, 2)}
    z = adapter.encode(obs)
    assert z.shape == (3, adapter.embedding_dim)
    chunks = adapter.sample(z, 32, generator=torch.Generator().manual_seed(1))
    assert chunks.shape == (3, 32, adapter.horizon, adapter.action_dim) and torch.isfinite(chunks).all()
    again = adapter.sample(z, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(chunks, again) and chunks[0].std(0).mean() > 1e-3
    with pytest.raises(ValueError, match=r"\(N, 2, 2\)"):
        adapter.encode({"agent_pos": torch.randn(3, 3, 2)})
    with pytest.raises(ValueError, match="no denoising steps"):
        adapter.sample(z, 2, guidance=lambda state: None)


def test_doc_adapter_output_fits_the_rollout_store(tmp_path):
    """Embeddings (N, D) and sample batches (N, B, H, A) go into an episode's decisions and read back."""
    adapter = make_adapter()
    obs = {"agent_pos": torch.randn(5, 2, 2)}
    z = adapter.encode(obs)
    samples = adapter.sample(z, 16, generator=torch.Generator().manual_seed(0))
    store = EpisodeStore.create(tmp_path / "rollouts.zarr")
    store.append_episode(
        {"agent_pos": obs["agent_pos"][:, -1].numpy(), "action": samples[:, 0, 0].numpy()},
        decisions={"embedding": z.numpy(), "samples": samples.numpy().astype(np.float16),
                   "env_step": np.arange(5, dtype=np.int64)},
    )
    back = EpisodeStore.open(tmp_path / "rollouts.zarr").episode_decisions(0)
    assert back["embedding"].shape == (5, adapter.embedding_dim)
    assert back["samples"].shape == (5, 16, adapter.horizon, adapter.action_dim)
    np.testing.assert_allclose(back["samples"], samples.numpy(), atol=1e-2, rtol=1e-2)
