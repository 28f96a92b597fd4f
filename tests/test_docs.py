"""The docs cannot rot: README/docs code runs, and the model table matches the code."""

import re
from pathlib import Path

import pytest

import inceptionzoo
from inceptionzoo.stats import count_macs, count_parameters

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


BLOCKS = [(path.name, i, code) for path in DOCS for i, code in enumerate(python_blocks(path))]


@pytest.mark.parametrize(("doc", "index", "code"), BLOCKS, ids=[f"{d}-{i}" for d, i, _ in BLOCKS])
def test_python_examples_run(doc, index, code):
    exec(compile(code, f"{doc}[{index}]", "exec"), {})


def model_table() -> dict[str, list[str]]:
    rows = {}
    for line in (ROOT / "docs" / "models.md").read_text().splitlines():
        match = re.match(r"\| `([a-z0-9_]+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_every_model_has_a_row():
    assert sorted(model_table()) == sorted(inceptionzoo.list_models())


@pytest.mark.parametrize("name", inceptionzoo.list_models())
def test_model_table_counts_match_code(name):
    _, params, macs, input_size, *_, minimum, _tags = model_table()[name]
    model = inceptionzoo.create_model(name)
    assert int(params.replace(",", "")) == count_parameters(model)
    assert macs == f"{count_macs(model) / 1e9:.3f} G"
    height, width = model.pretrained_cfg["input_size"][1:]
    assert input_size == f"{height}x{width}"
    assert minimum.startswith(f"{model.min_input_size[0]}x{model.min_input_size[1]}")
