"""The docs hold: the code in docs/crf.md runs as written, and every link of the README and docs/ leads somewhere."""

import re

import pytest

from seqlab.testing import REPO


@pytest.mark.slow  # about 15 s: it trains the guide's tagger; tests/test_backends.py runs it on JAX and PyTorch too
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


def anchors(path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    found = set()
    for heading in re.findall(r"(?m)^#+ (.*)$", path.read_text()):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    broken = []
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_readme_is_a_front_door():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    commands = re.findall(r"^    (pip install .*)$", text, flags=re.M)
    assert commands[:2] == ["pip install -e . && python -m experiments.run +encoder=bilstm",
                            "pip install -e '.[test]' && python -m pytest"]
    assert (REPO / ".ci" / "run").read_text().rstrip().endswith(commands[1])  # CI runs exactly the README's tests
