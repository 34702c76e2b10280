"""Per-decision phase timing that does not add host synchronisations on CUDA."""

from __future__ import annotations

import time

import torch


class PhaseTimer:
    """Marks phase boundaries; on CUDA with events resolved after the decision's one sync point."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._marks: list[tuple[str, object]] = []

    def start(self) -> None:
        self._marks = [("start", self._now())]

    def mark(self, phase: str) -> None:
        self._marks.append((phase, self._now()))

    def _now(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))  # the policy's GPU, not the current one
            return (event, time.perf_counter())
        return time.perf_counter()

    def results_ms(self) -> dict[str, float]:
        """Milliseconds per phase plus 'total'; call after the decision's host sync."""
        out = {}
        for (_, a), (name, b) in zip(self._marks, self._marks[1:]):
            if self.cuda:
                b[0].synchronize()
                out[name] = float(a[0].elapsed_time(b[0]))
            else:
                out[name] = (b - a) * 1e3
        out["total"] = sum(out.values())
        return out
