"""The README is the front door: every setting is documented with its real default."""
from __future__ import annotations

import re
from pathlib import Path

from streams.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `CCPULSE_(\w+)` \| ([^|]+) \|", README, flags=re.M))
    for name, field in Settings.model_fields.items():
        assert name.upper() in rows, f"CCPULSE_{name.upper()} is not in the README settings table"
        default = rows[name.upper()].strip().strip("`")
        if field.default is None:
            assert default == "(none)", name
        else:
            want = str(field.default)
            assert default in (want, f"{field.default:g}" if isinstance(field.default, float) else want), \
                f"CCPULSE_{name.upper()}: README says {default}, code says {want}"
    assert set(rows) <= {n.upper() for n in Settings.model_fields}, "the README lists a setting the code lacks"
