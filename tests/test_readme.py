"""The README's Python blocks run as written, so the tour cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the tour writes tour.db in the working directory
    monkeypatch.setenv("EVENTACTORS_MASTER_KEY", "00" * 32)  # the encryption example reads it
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "Account(owner='ann', balance=100) 2" in printed
    assert "insufficient funds {'balance': 100}" in printed
    assert "account|acc-1 1 Opened(owner='ann')" in printed
    assert "Lot(highest=100, bidder='ann') | bid too low {'highest': 100}" in printed
    assert "is at revision 1, the command expected 0; nothing was persisted" in printed
    assert "already a member\ntaken by True\nAnn 1 ['Joined', 'Renamed']" in printed
    assert "accepted Rename(name='Ann Lee') 1 \n" in printed
    assert "rejected Join(email='ann@example.com', name='Imposter') 0 already a member" in printed


def test_every_test_the_readme_cites_exists():
    """The Guarantees section names the tests that prove each promise: they must exist."""
    text = README.read_text()
    root = README.parent
    cited = set(re.findall(r"`(tests/[\w/]+(?:\.py)?)(?:::(\w+))?`", text))
    assert len(cited) >= 15
    for path, name in cited:
        assert (root / path).exists(), f"README cites {path}, which does not exist"
        if name:
            assert f"def {name}(" in (root / path).read_text(), f"{path} has no {name}"
