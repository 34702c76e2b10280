"""RND-OE's one-row numpy step equals the torch networks; widths sized from D fit, separate and round-trip."""

from __future__ import annotations

import json

import numpy as np
import torch

from fiper.scores import ScoreFitData, make_score, score_from_state
from fiper.scores.rnd_core import sized_widths

ENDS = np.arange(1, 11) * 100


def _torch_scores(score, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return score._score(torch.from_numpy(z), None).numpy()


def test_numpy_step_equals_the_torch_networks_and_sees_weight_updates(manifold):
    train, new = manifold.embeddings(1000), manifold.embeddings(50, shift=1.0)
    score = make_score("rnd_oe", target_widths=[32, 32], predictor_widths=[64, 64, 64], out_dim=16,
                       train=dict(max_epochs=3, batch_size=64)).fit(ScoreFitData(train, None, ENDS))
    assert score._host() is not None  # the CPU fast path is the one under test
    np.testing.assert_allclose([score.step(z) for z in new], _torch_scores(score, new), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # in-place updates reach the numpy views (they share the weights' memory)
        score.nets.predictor[0].weight.mul_(1.5)
    moved = [score.step_checked(z) for z in new]
    np.testing.assert_allclose(moved, _torch_scores(score, new), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(moved, score.score_offline(new, None, [50]), rtol=1e-5, atol=1e-5)
    score.to("cpu")  # reloaded tensors: the cached views are rebuilt
    np.testing.assert_allclose([score.step(z) for z in new], moved, rtol=0, atol=0)


def test_networks_numpy_cannot_run_fall_back_to_torch(manifold):
    train, new = manifold.embeddings(400), manifold.embeddings(20)
    score = make_score("rnd_oe", target_widths=[16], predictor_widths=[16, 16], out_dim=8,
                       train=dict(max_epochs=1)).fit(ScoreFitData(train, None, ENDS[:4]))
    score.nets.target[1] = torch.nn.ReLU()  # not a LeakyReLU: no host path
    score._host_cache = None
    assert score._host() is None
    np.testing.assert_allclose([score.step(z) for z in new], _torch_scores(score, new), rtol=1e-5, atol=1e-5)


def test_widths_sized_from_the_embedding_are_saved_and_separate_a_shift(manifold, auroc):
    assert sized_widths(64, None, None, None) == ([128], [128, 128], 64)
    assert sized_widths(512, None, None, 32) == ([128], [128, 128], 32)
    assert sized_widths(4, [8, 8], None, None) == ([8, 8], [32, 32, 32], 16)
    train, held_out, shifted = manifold.embeddings(1000), manifold.embeddings(300), manifold.embeddings(300, shift=2.0)
    score = make_score("rnd_oe", target_widths=None, predictor_widths=None, out_dim=None,
                       train=dict(lr=3e-3, max_epochs=20, batch_size=64)).fit(ScoreFitData(train, None, ENDS, seed=0))
    d = train.shape[1]
    w = min(128, max(32, 2 * d))
    tensors, config = score.state()
    assert config["params"]["target_widths"] == [w] and config["params"]["predictor_widths"] == [w, w]
    assert config["params"]["out_dim"] == w // 2
    assert auroc(score.score_offline(held_out, None, [300]), score.score_offline(shifted, None, [300])) >= 0.95
    loaded = score_from_state(tensors, config)
    np.testing.assert_array_equal(loaded.score_offline(shifted, None, [300]), score.score_offline(shifted, None, [300]))


def test_null_widths_are_sized_and_explicit_widths_still_load(manifold):
    train, new = manifold.embeddings(400), manifold.embeddings(20)
    d = train.shape[1]
    w = min(128, max(32, 2 * d))
    sized = make_score("rnd_oe", target_widths=None, predictor_widths=None, out_dim=None,
                       train=dict(max_epochs=1)).fit(ScoreFitData(train, None, ENDS[:4]))
    params = sized.state()[1]["params"]
    assert (params["target_widths"], params["predictor_widths"], params["out_dim"]) == ([w], [w, w], w // 2)
    default = make_score("rnd_oe").config  # the class defaults: 128-wide, whitened
    assert (default["target_widths"], default["predictor_widths"], default["out_dim"], default["whiten"]) == ([128, 128], [128, 256, 128], 64, True)
    # an artifact saved with explicit widths (e.g. the earlier 256-512 defaults) rebuilds those networks
    explicit = make_score("rnd_oe", target_widths=[24, 40], predictor_widths=[24, 40, 40], out_dim=12,
                          train=dict(max_epochs=1)).fit(ScoreFitData(train, None, ENDS[:4]))
    tensors, config = explicit.state()
    loaded = score_from_state(tensors, json.loads(json.dumps(config)))
    assert [m.out_features for m in loaded.nets.predictor if isinstance(m, torch.nn.Linear)] == [24, 40, 40, 12]
    np.testing.assert_array_equal([loaded.step(z) for z in new], [explicit.step(z) for z in new])
    np.testing.assert_array_equal(loaded.score_offline(new, None, [20]), explicit.score_offline(new, None, [20]))


def test_whitened_input_sees_a_small_off_manifold_shift_and_round_trips(auroc):
    """Embeddings on a 3-dim plane in 16 dims with little noise; a shift of five noise std off the
    plane. Whitening makes it as visible as the Mahalanobis baseline sees it; the plain
    standardised input (per-column scale set by the plane's large variance) barely does."""
    g = np.random.default_rng(0)
    w = g.normal(size=(3, 16))
    q, _ = np.linalg.qr(np.concatenate([w.T, g.normal(size=(16, 1))], axis=1))
    off = q[:, -1]  # unit vector orthogonal to the plane

    def embeddings(n: int) -> np.ndarray:
        return (g.normal(size=(n, 3)) @ w + 0.05 * g.normal(size=(n, 16))).astype(np.float32)

    train, held_out = embeddings(2000), embeddings(400)
    shifted = (held_out + 0.25 * off).astype(np.float32)
    cfg = dict(target_widths=[32], predictor_widths=[32, 32], out_dim=16, train=dict(lr=3e-3, max_epochs=15, batch_size=64))
    ends = np.arange(1, 21) * 100
    plain = make_score("rnd_oe", whiten=False, **cfg).fit(ScoreFitData(train, None, ends, seed=0))  # the published input
    white = make_score("rnd_oe", whiten=True, **cfg).fit(ScoreFitData(train, None, ends, seed=0))
    a_plain = auroc(plain.score_offline(held_out, None, [400]), plain.score_offline(shifted, None, [400]))
    a_white = auroc(white.score_offline(held_out, None, [400]), white.score_offline(shifted, None, [400]))
    assert a_white >= 0.9 and a_white >= a_plain + 0.15, (a_plain, a_white)
    assert white._host() is not None and white._host()[2] is not None  # the numpy step whitens too
    np.testing.assert_allclose([white.step(z) for z in shifted[:20]], _torch_scores(white, shifted[:20]), rtol=1e-5, atol=1e-5)
    tensors, config = white.state()
    assert "whiten" in tensors and config["params"]["whiten"] is True
    loaded = score_from_state(tensors, json.loads(json.dumps(config)))
    np.testing.assert_array_equal(loaded.score_offline(shifted, None, [400]), white.score_offline(shifted, None, [400]))
    old = dict(config, params={k: v for k, v in config["params"].items() if k != "whiten"})  # saved before the option
    assert score_from_state({k: v for k, v in tensors.items() if k != "whiten"}, old).whiten is None
