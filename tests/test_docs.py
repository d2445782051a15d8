"""The code in docs/crf.md runs as written, top to bottom (on whichever Keras backend this session uses)."""

import re

from seqlab.testing import REPO


def test_crf_guide_runs(tmp_path, monkeypatch, capsys):
    text = (REPO / "docs" / "crf.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "crf_guide"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/crf.md block {i + 1}", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "token accuracy" in out and "argmax ['I-X', 'I-X'] viterbi ['B-X', 'I-X']" in out
