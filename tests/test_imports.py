"""The torch-free parts of fiper import without torch; the package's top-level names still resolve."""

import subprocess
import sys

import pytest

TORCH_FREE = ["fiper", "fiper.storage", "fiper.env_factory", "fiper.collection", "calibration", "envs"]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_does_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} pulled in torch"


def test_top_level_names_resolve():
    import fiper
    from fiper.protocol import GenerativePolicy
    from fiper.storage import EpisodeStore

    assert fiper.EpisodeStore is EpisodeStore
    assert fiper.GenerativePolicy is GenerativePolicy
    assert set(fiper.__all__) <= set(dir(fiper))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fiper.nope  # noqa: B018
