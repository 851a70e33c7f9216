"""Every relative link in the README and docs/ names a file of the checkout (issue 20 §5 moved the
long sections into docs/, where links are relative to the page)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_relative_links_resolve():
    missing = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:|#", target):
                continue
            path = target.split("#")[0]
            if not (page.parent / path).exists():
                missing.append(f"{page.relative_to(REPO)} -> {target}")
    assert not missing, missing
