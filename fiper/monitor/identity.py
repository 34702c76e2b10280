"""The shapes of the policy a monitor was fitted for, checked when the two meet."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class PolicyIdentity:
    """Embedding and chunk shapes (and an optional name) of the monitored policy.

    A monitor's scores are only meaningful for the embedding space and sample shapes they were
    fitted on; loading a monitor against another policy fails naming both shapes.
    """

    embedding_dim: int
    num_samples: int
    horizon: int
    action_dim: int
    n_action_steps: int = 1
    name: str = ""

    @classmethod
    def of(cls, policy: Any, num_samples: int, name: str = "") -> PolicyIdentity:
        """Identity of a GenerativePolicy sampled with ``num_samples`` chunks per decision."""
        return cls(int(policy.embedding_dim), int(num_samples), int(policy.horizon), int(policy.action_dim),
                   int(policy.n_action_steps), name or type(policy).__name__)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.num_samples, self.horizon, self.action_dim)

    def describe(self) -> str:
        return f"embedding (D={self.embedding_dim}), samples (B, H, A)={self.sample_shape}"

    def check_matches(self, other: PolicyIdentity) -> None:
        """Raise ValueError naming both shapes if ``other`` is a policy of different shapes."""
        mine = (self.embedding_dim, self.horizon, self.action_dim)
        theirs = (other.embedding_dim, other.horizon, other.action_dim)
        if mine != theirs:
            raise ValueError(
                f"monitor was fitted for a policy with {self.describe()} but the policy has "
                f"{other.describe()}; fit a monitor for this policy with `python -m launch.fit`"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
