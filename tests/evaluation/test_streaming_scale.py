"""Peak memory of the whole offline evaluation does not grow with the number of recorded decisions."""

from __future__ import annotations

from benchmarks.scale import run

# B = 256 sampled chunks of H = 16 steps x A = 8 per decision, float16: 64 KiB of sample batches per decision.
SIZES = [720, 2880]
MARGIN_MB = 60  # the whole-store path (samples and fit batches in memory) grew by 160 MB between these sizes


def test_four_times_the_decisions_add_no_more_than_the_margin_to_peak_memory(tmp_path):
    """Each size is evaluated in a fresh process (ACE and RND-A, which fit on the sample batches) with
    4 MiB read blocks; the sample batches are 43 and 171 MB, and peak memory grows by less than 60 MB."""
    small, large = run(SIZES, batch=256, action_dim=8, root=tmp_path, config_name="tiny", block_mb=4, one_store=True)
    assert large["decisions"] >= 3.5 * small["decisions"]
    assert large["sample_mb"] - small["sample_mb"] > 2 * MARGIN_MB  # the data grows by far more than the margin
    assert large["peak_mb"] - small["peak_mb"] <= MARGIN_MB, (small, large)
