"""The README's Python blocks run as written, so the tour cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the tour writes tour.db in the working directory
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "Account(owner='ann', balance=100) 2" in printed
    assert "insufficient funds {'balance': 100}" in printed
    assert "account|acc-1 1 Opened(owner='ann')" in printed
