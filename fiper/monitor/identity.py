"""The shapes and weights fingerprint of the policy a monitor was fitted for, checked when the two meet."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass
from typing import Any


def policy_fingerprint(policy: Any, _depth: int = 0) -> str | None:
    """sha256 identifying a policy's weights: the policy's own ``fingerprint()`` (or ``fingerprint``
    attribute) if it offers one, else a hash of a torch.nn.Module's class and state_dict (names,
    dtypes, shapes, bytes), else, for an adapter that is no Module, a hash of its class and of the
    Modules and tensors among its attributes, else, for a wrapper, of the fingerprints of the policies it holds
    (attributes with a ``sample`` method); None for a policy that holds none of these (then no weights check is
    possible)."""
    own = getattr(policy, "fingerprint", None)
    if callable(own):
        own = own()
    if own is not None:
        return str(own)
    import torch

    h = hashlib.sha256(f"{type(policy).__module__}.{type(policy).__qualname__}".encode())
    if isinstance(policy, torch.nn.Module):
        parts = {"": policy}
    else:
        held = getattr(policy, "__dict__", {})
        parts = {name: value for name, value in sorted(held.items()) if isinstance(value, (torch.nn.Module, torch.Tensor))}
        if not parts:  # a wrapper: the fingerprints of the policies it holds (self.policy = <adapter>)
            inner = {name: policy_fingerprint(value, _depth + 1) for name, value in sorted(held.items())
                     if _depth < 3 and value is not policy and callable(getattr(value, "sample", None))}
            inner = {name: digest for name, digest in inner.items() if digest is not None}
            for name, digest in inner.items():
                h.update(f"\x00{name}:{digest}".encode())
            return h.hexdigest() if inner else None
    for prefix, part in parts.items():
        tensors = part.state_dict() if isinstance(part, torch.nn.Module) else {"": part}
        for name, tensor in sorted(tensors.items()):
            t = tensor.detach().to("cpu").contiguous()
            key = f"{prefix}.{name}".strip(".") if prefix else name
            h.update(f"\x00{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass(frozen=True)
class PolicyIdentity:
    """Embedding and chunk shapes, an optional name, and the weights fingerprint of the monitored policy.

    A monitor's scores are only meaningful for the embedding space, sample shapes and policy they
    were fitted on; loading a monitor against a policy of other shapes or other weights fails
    naming what differs.
    """

    embedding_dim: int
    num_samples: int
    horizon: int
    action_dim: int
    n_action_steps: int = 1
    name: str = ""
    fingerprint: str | None = None

    @classmethod
    def of(cls, policy: Any, num_samples: int, name: str = "") -> PolicyIdentity:
        """Identity of a GenerativePolicy sampled with ``num_samples`` chunks per decision."""
        return cls(int(policy.embedding_dim), int(num_samples), int(policy.horizon), int(policy.action_dim),
                   int(policy.n_action_steps), name or type(policy).__name__, policy_fingerprint(policy))

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.num_samples, self.horizon, self.action_dim)

    def describe(self) -> str:
        return f"embedding (D={self.embedding_dim}), samples (B, H, A)={self.sample_shape}"

    def check_shapes(self, other: PolicyIdentity, *, source: str = "monitor") -> None:
        """Raise ValueError naming both shapes if ``other`` is a policy of different shapes."""
        mine = (self.embedding_dim, self.horizon, self.action_dim)
        theirs = (other.embedding_dim, other.horizon, other.action_dim)
        if mine != theirs:
            raise ValueError(
                f"{source} was fitted for a policy with {self.describe()} but the policy has "
                f"{other.describe()}; fit a monitor for this policy with `python -m launch.fit`"
            )

    def check_matches(self, other: PolicyIdentity, *, allow_other_policy: bool = False, source: str = "monitor") -> None:
        """Raise ValueError if ``other`` has different shapes, or different weights (unless
        ``allow_other_policy``); warn when a fingerprint is missing on either side."""
        self.check_shapes(other, source=source)
        if self.fingerprint is None or other.fingerprint is None:
            if self.fingerprint is None:
                why = (f"{source} records no policy fingerprint (written by an older fiper, or fitted from recorded "
                       "decisions without policy_dir= / policy_factory=)")
                fix = ("re-fit with `python -m launch.fit ... policy_dir=<checkpoint>` (or policy_factory=), or in Python with "
                       "load_decisions(store, episodes=..., policy=policy) before fit_monitor, to record it")
            else:
                why = (f"the policy {other.name or ''} offers no fingerprint (no fingerprint(), not a torch.nn.Module, and "
                       "no modules or tensors among its attributes)")
                fix = "give the adapter a fingerprint() method returning a string that changes with its weights (docs/adapters.md)"
            warnings.warn(f"{why}: cannot check that the monitor was fitted for this policy's weights, only its shapes; {fix}",
                          stacklevel=3)
            return
        if self.fingerprint != other.fingerprint and not allow_other_policy:
            raise ValueError(
                f"{source} was fitted for another policy ({self.name or 'unnamed'}, weights sha256 {self.fingerprint[:12]}) than "
                f"the one given ({other.name or 'unnamed'}, weights sha256 {other.fingerprint[:12]}), with the same shapes; its "
                "scores describe the other policy's behaviour. Fit a monitor for this policy with `python -m launch.fit`, or "
                "pass allow_other_policy=True to load it anyway; if the given policy wraps the fitted one (a class of your own "
                "around it), give the wrapper a fingerprint() that returns the inner policy's "
                "(fiper.monitor.identity.policy_fingerprint(inner)), as fiper's DeadlinePolicy does"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
