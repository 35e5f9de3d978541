"""The documentation a user reads: every setting with its real default (docs/operations.md),
and a README front door that stays short and links to every page of docs/."""
from __future__ import annotations

import re
from pathlib import Path

from streams.config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "docs" / "operations.md").read_text()


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `CCPULSE_(\w+)` \| ([^|]+) \|", README, flags=re.M))
    for name, field in Settings.model_fields.items():
        assert name.upper() in rows, f"CCPULSE_{name.upper()} is not in the settings table of docs/operations.md"
        default = rows[name.upper()].strip().strip("`")
        if field.default is None:
            assert default == "(none)", name
        else:
            want = str(field.default)
            assert default in (want, f"{field.default:g}" if isinstance(field.default, float) else want), \
                f"CCPULSE_{name.upper()}: docs/operations.md says {default}, code says {want}"
    assert set(rows) <= {n.upper() for n in Settings.model_fields}, "docs/operations.md lists a setting the code lacks"


def test_the_front_door_is_short_and_links_every_page() -> None:
    front = (ROOT / "README.md").read_text()
    assert len(front) < 16_000, f"README.md is {len(front):,} characters: details belong in docs/"
    assert "./run demo" in front and "./run test" in front
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in front, f"README.md does not link docs/{page.name}"
    for text in [front] + [p.read_text() for p in (ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(((?:\.\./)?[\w./-]+\.md)(?:#[\w-]+)?\)", text):
            base = ROOT if text is front else ROOT / "docs"
            assert (base / target).resolve().exists(), f"a link to {target} that does not exist"
