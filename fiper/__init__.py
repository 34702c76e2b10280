"""fiper: runtime failure prediction and intervention for generative robot policies.

The top-level names resolve lazily (PEP 562) so that torch-free parts — ``fiper.storage``,
``fiper.collection``, ``calibration`` — do not pay for importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "EpisodeStore": "fiper.storage",
    "StoreError": "fiper.storage",
    "GenerativePolicy": "fiper.protocol",
    "Guidance": "fiper.protocol",
    "GuidanceResult": "fiper.protocol",
    "GuidanceState": "fiper.protocol",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fiper' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
