"""ObsHistory: start-of-episode padding, observations given as torch tensors, and one it cannot read named by its key."""

import numpy as np
import pytest
import torch

from fiper.control.history import ObsHistory


def test_first_observation_pads_the_history_then_frames_shift():
    h = ObsHistory(["pos"], 3)
    h.push({"pos": np.array([1.0, 2.0])})
    np.testing.assert_array_equal(h.tensors(torch.device("cpu"))["pos"][0], [[1, 2]] * 3)
    h.push({"pos": np.array([3.0, 4.0])})
    np.testing.assert_array_equal(h.tensors(torch.device("cpu"))["pos"][0], [[1, 2], [1, 2], [3, 4]])
    with pytest.raises(KeyError, match="lacks"):
        h.push({"other": np.zeros(2)})


def test_tensor_observations_keep_their_dtype_even_with_grad_or_bf16():
    """Observations from a torch-based simulator (autograd on, any device, bf16) are accepted."""
    h = ObsHistory(["pos", "image"], 2)
    pos = torch.tensor([0.5, -0.25], requires_grad=True)  # np.asarray refuses this one
    image = torch.arange(12, dtype=torch.uint8).reshape(2, 2, 3)
    h.push({"pos": pos.bfloat16(), "image": image})
    out = h.tensors(torch.device("cpu"))
    assert out["image"].dtype == torch.uint8 and out["pos"].dtype == torch.float32
    np.testing.assert_array_equal(out["pos"][0, -1], [0.5, -0.25])
    np.testing.assert_array_equal(out["image"][0, -1], image)


def test_an_observation_that_cannot_be_read_names_its_key():
    h = ObsHistory(["pos"], 2)
    with pytest.raises(ValueError, match=r"obs\['pos'\] cannot be read to the host"):
        h.push({"pos": torch.zeros(2, device="meta")})
