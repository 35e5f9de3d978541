"""Contact-record folders (``ccpulse connect amazon-connect``, ``connect run``) attacked by
whoever can write files into them: a link to a file elsewhere, a file far larger than any
export, one record that never ends. Each is refused or dead-lettered with its reason, in
bounded memory, and the records around it are still read (issue 24)."""
from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

from streams.connectors.amazon_connect import iter_records, map_ctr
from streams.connectors.queue_log import Rejected
from streams.connectors.run import _ctr_records

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "amazon-connect"


def _records(path: Path, folder: Path) -> list[tuple[int, object, str]]:
    return list(_ctr_records(path, folder, "aws", map_ctr, iter_records))


def test_a_link_out_of_the_folder_is_one_dead_letter_and_its_target_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "ctr"
    folder.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"ContactId": "SECRET-CANARY", "password": "hunter2"}))
    (folder / "innocent.json").symlink_to(secret)
    ((_, out, raw),) = _records(folder / "innocent.json", folder)
    assert isinstance(out, Rejected) and out.reason == "outside_folder" and raw == ""


def test_a_huge_file_is_read_in_bounded_memory_and_every_record_in_it_counts(tmp_path: Path) -> None:
    """24 MB of contact records (the sample's, each with 4 kB of contact attributes, again and
    again): every one is read and mapped as alone, and the reader never holds more than a few
    megabytes of the file (it used to read the whole file)."""
    folder = tmp_path / "ctr"
    folder.mkdir()
    sample = [json.loads(line) for line in (SAMPLE / "export-2026-03-02.jsonl").read_text().splitlines() if line.strip()]
    big = folder / "big.jsonl"
    want = []
    with open(big, "w") as f:
        while f.tell() < 24 * 1024 * 1024:
            for rec in sample:
                rec = {**rec, "ContactId": f"{rec.get('ContactId')}-{len(want)}", "Attributes": {"notes": "n" * 4096}}
                f.write(json.dumps(rec) + "\n")
                want.append(type(map_ctr(rec, "aws")).__name__)
    tracemalloc.start()
    got = [type(out).__name__ for _, out, _ in _ctr_records(big, folder, "aws", map_ctr, iter_records)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got == want and len(got) > 4000
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB while reading a 24 MB file"


def test_a_record_that_never_ends_is_one_dead_letter_and_the_next_file_line_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "ctr"
    folder.mkdir()
    f = folder / "endless.json"
    f.write_text('{"ContactId": "' + "A" * (3 * 1024 * 1024) + '\n' + json.dumps({"ContactId": "after"}) + "\n")
    got = _records(f, folder)
    assert [(o.reason if isinstance(o, Rejected) else "mapped") for _, o, _ in got][0] == "garbled_line"
    assert "1,048,576" in got[0][1].error and len(got[0][2]) <= 200  # type: ignore[union-attr]
    assert got[1][2] == json.dumps({"ContactId": "after"})  # read on at the next line
