"""Every test docs/reliability.md names exists, so the list of guarantees cannot drift from the suite."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_named_test_exists():
    text = (ROOT / "docs" / "reliability.md").read_text()
    named, current = [], None
    for match in re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", text):
        path, name, short = match.groups()
        if path:
            current = path
            assert (ROOT / path).is_file(), path
        if name or short:
            named.append((current, name or short))
    assert len(named) > 40
    missing = [f"{p}::{n}" for p, n in named if not re.search(rf"^def {n}\(", (ROOT / p).read_text(), re.M)]
    assert not missing, missing
