"""The docs cannot rot: every code example in README, SECURITY.md, examples/README.md and docs/ runs, and the model
table and the paper-row pages match the code.

Python blocks run in a scratch folder against a loopback Hub that serves the ``inception_v3`` tags (weights built
from a real timm model), so ``pretrained=True`` examples run as written. Shell blocks run command by command in a
scratch folder laid out like a checkout (``examples/``, ``benchmarks/``, a small CIFAR-10 archive of real images at
the paths the docs name); long jobs (training, benchmarks) get the few arguments in ``SMOKE_ARGUMENTS`` appended,
which shrink them to tiny sizes without changing what is run (the limit on each is a bound on a hang, not a speed
claim). Install commands are checked against pyproject.toml, and the README's two set-up commands are the ones
``.ci/run`` runs verbatim.
"""

import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import metadata
from pathlib import Path

import pytest
import timm
from safetensors.torch import save

import inceptionzoo
from conftest import realistic_batchnorm, write_photos
from hub_server import HubServer
from inceptionzoo import _registry
from inceptionzoo.complexity import count_macs, count_parameters

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "SECURITY.md",
    ROOT / "examples" / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
]
SETUP_HEADINGS = ("Install and run the main job", "Install the test dependencies")


# the package's own models: the docs describe these, not the toy family the tests register (tests/toy_family.py)
PACKAGE_MODELS = [
    name
    for name in inceptionzoo.list_models()
    if _registry._model_entrypoints[name].__module__.startswith("inceptionzoo.")
]


def code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def setup_commands() -> list[str]:
    """The README's two set-up commands, found as .ci/run finds them: the first line of the next bash block."""
    lines = (ROOT / "README.md").read_text().splitlines()
    commands = []
    for heading in SETUP_HEADINGS:
        start = next(i for i, line in enumerate(lines) if line.startswith(heading))
        fence = next(i for i in range(start, len(lines)) if lines[i].startswith("```bash"))
        commands.append(lines[fence + 1])
    return commands


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a shell block as argument lists: continuation lines joined, comments dropped, && split."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens:
            end = tokens.index("&&") if "&&" in tokens else len(tokens)
            commands.append(tokens[:end])
            tokens = tokens[end + 1 :]
    return commands


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


PYTHON_BLOCKS = [(doc_id(path), i, code) for path in DOCS for i, code in enumerate(code_blocks(path, "python"))]
SETUP_COMMANDS = setup_commands()


def _first_of_each(blocks: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """The blocks with each distinct text once: a command shown on two pages (README and docs) runs once."""
    seen: set[str] = set()
    return [entry for entry in blocks if not (entry[2] in seen or seen.add(entry[2]))]


SHELL_BLOCKS = _first_of_each(
    [
        (doc_id(path), i, block)
        for path in DOCS
        for i, block in enumerate(code_blocks(path, "bash"))
        if block.splitlines()[0] not in SETUP_COMMANDS
    ]
)


# --- the loopback Hub and the scratch folder ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_hub():
    """A loopback Hub serving every inception_v3 tag (one real timm model's weights, aux head included)."""
    model = timm.create_model("inception_v3", aux_logits=True)
    weights = save({key: value.contiguous() for key, value in model.state_dict().items()})
    server = HubServer()
    for name in inceptionzoo.list_pretrained("inception_v3.*"):
        server.add_repo(f"timm/{name}", {"model.safetensors": weights})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def small_cifar(cifar_subset, tmp_path_factory) -> Path:
    """The shared CIFAR-10 copy's format (a .tar.gz of train/<class>/ and test/<class>/ JPEGs), 30 real images."""
    archive = tmp_path_factory.mktemp("small-cifar") / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(cifar_subset / split, arcname=split)
    return archive


@pytest.fixture(scope="module")
def fid_weights(tmp_path_factory) -> Path:
    """Stand-in weights for the FID network's URL tag (its real file is not reachable here), written once: each
    example links to this file rather than copying its 95 MB."""
    model = realistic_batchnorm(inceptionzoo.create_model("inception_v3_fid"), size=96, batch=2)
    path = tmp_path_factory.mktemp("fid-weights") / "weights.safetensors"
    path.write_bytes(save(model.state_dict()))
    return path


@pytest.fixture
def scratch(tmp_path, monkeypatch, docs_hub, fid_weights) -> Path:
    """A checkout-like folder to run examples in, online against the loopback Hub with a private cache, and the FID
    network's weights where a download would have converted them to (torch.hub's checkpoints folder)."""
    from inceptionzoo.hub.urls import url_cache_dir

    work = tmp_path / "work"
    work.mkdir()
    url_cache_dir().mkdir(parents=True, exist_ok=True)
    (url_cache_dir() / "pt_inception-2015-12-05-6726825d.safetensors").symlink_to(fid_weights)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HF_ENDPOINT", docs_hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return work


@pytest.mark.lowest
@pytest.mark.parametrize(("doc", "index", "code"), PYTHON_BLOCKS, ids=[f"{d}-{i}" for d, i, _ in PYTHON_BLOCKS])
def test_python_examples_run(doc, index, code, scratch, request):
    if "../shared/data" in code:  # an example on the project's CIFAR-10 copy runs in a checkout with a small one
        request.getfixturevalue("checkout")
    exec(compile(code, f"{doc}[{index}]", "exec"), {"__name__": "__docs__"})


# --- shell examples -----------------------------------------------------------------------------------------------

TRAINING = ("examples/finetune_cifar10.py", "inceptionzoo.train", "inceptionzoo train")
# appended to a doc's command (argparse keeps the last value): the same program and options, on a few images
SMOKE_ARGUMENTS = {
    "training": ["--subset", "20", "--epochs", "1", "--batch-size", "4", "--threads", "1", "--no-progress"],
    # its fixed costs (three ONNX exports, two int8 calibrations) dominate: about 2 minutes on 2 idle cores
    "benchmarks/inference.py": shlex.split("--arch inception_v1_tv --batch 1 --repeats 1 --iterations 1 --no-compile"),
    "benchmarks/train.py": ["--arch", "inception_v1_cifar", "--batch", "8", "--repeats", "1", "--no-compile"],
    # one point (batch 1 at 75x75, the smallest input), one image per repetition
    "benchmarks/scaling.py": shlex.split(
        "--dtypes fp32 --batches 1 --batch-resolution 75 --resolutions 75 --resolution-batch 1 --images 1 --repeats 1"
    ),
    "benchmarks/data.py": ["--images", "8", "--repeats", "1", "--sizes", "32", "--workers", "0"],
    "examples/quantize_cifar10.py": ["--calibration-images", "8"],
    # no network here: the push writes the repo's files to a folder instead of uploading them
    "inceptionzoo push": ["--local-dir", "pushed"],
    # int8 left out (two quantizations, a third of its time; tests/test_fid_compute.py runs FID's int8)
    "benchmarks/fid.py": shlex.split(
        "--images 4 --batch 4 --repeats 1 --calibration-passes 1 --calibration-images 0 --ceiling"
    ),
    # FID on a few images of each set, with as few IS splits and KID subsets as that allows
    "inceptionzoo fid": shlex.split("--max-images 8 --isc-splits 2 --kid-subsets 2 --kid-subset-size 4 --quiet"),
    # a study on a few images, one epoch, one seed (--set merges with the doc's own settings, the last value wins)
    "ablate": shlex.split("--epochs 1 --seeds 1 --set subset=20 batch_size=4 threads=1"),
}
# the limit on one documented command: a bound on a hang, not a speed claim (the inference benchmark takes about
# 2 minutes on 2 idle cores, several times that on a loaded machine)
HANG = 1800
PROGRAMS = {
    "python": [sys.executable],
    "python3": [sys.executable],
    ".venv/bin/python": [sys.executable],
    "inceptionzoo": [sys.executable, "-m", "inceptionzoo"],
    "torchrun": [sys.executable, "-m", "torch.distributed.run"],
}


def is_install(argv: list[str]) -> bool:
    return Path(argv[0]).name == "pip" or argv[1:3] == ["-m", "venv"] or argv[1:3] == ["-m", "pip"]


def smoke_arguments(argv: list[str]) -> list[str]:
    """What to append to a documented command so it runs in seconds; nothing for --help or quick commands."""
    if "--help" in argv or "-h" in argv:
        return []
    text = " ".join(argv)
    if "ablate" in text:
        return SMOKE_ARGUMENTS["ablate"]
    if any(program in text for program in TRAINING):
        # keep the doc's own validation choice: 0 stays 0, a number becomes a 10-image split of the 20, and none
        # keeps the default (val/ when the folder has one, else a split carved out of train/)
        if "--val-size" not in argv:
            return SMOKE_ARGUMENTS["training"]
        return [*SMOKE_ARGUMENTS["training"], "--val-size", "0" if argv[argv.index("--val-size") + 1] == "0" else "10"]
    return next((extra for script, extra in SMOKE_ARGUMENTS.items() if script in text), [])


def check_install(argv: list[str]) -> None:
    """pip install of this project names only extras that it defines."""
    extras = metadata("inceptionzoo").get_all("Provides-Extra")
    for target in argv:
        match = re.fullmatch(r"(?:inceptionzoo|\.|-e)?\[([a-z,]+)\]", target.split("/")[-1].removeprefix("."))
        if match:
            assert set(match.group(1).split(",")) <= set(extras), f"unknown extra in {target!r}"


@pytest.fixture
def checkout(scratch, small_cifar) -> Path:
    """``scratch`` laid out like a checkout: copies of examples/ and benchmarks/, docs/images/, the small CIFAR-10
    archive both where the docs put it for users (``cifar10-jpeg.tar.gz``) and at the project's ``../shared`` path,
    and ``my-photos/``, a folder of photos of mixed sizes and modes (train/ and val/)."""
    for folder in ("examples", "benchmarks"):
        shutil.copytree(ROOT / folder, scratch / folder, ignore=shutil.ignore_patterns("__pycache__", "*.csv"))
    (scratch / "docs" / "images").mkdir(parents=True)
    shutil.copy(small_cifar, scratch / "cifar10-jpeg.tar.gz")
    (scratch.parent / "shared" / "data").mkdir(parents=True)
    shutil.copy(small_cifar, scratch.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")
    write_photos(scratch / "my-photos", {"train": 6, "val": 2})
    return scratch


@pytest.mark.slow
@pytest.mark.parametrize(("doc", "index", "block"), SHELL_BLOCKS, ids=[f"{d}-{i}" for d, i, _ in SHELL_BLOCKS])
def test_shell_examples_run(doc, index, block, checkout):
    # hf_xet's own chunk transfer cannot be served by the loopback Hub, and the stand-in for it lives in this process:
    # child processes download plain LFS (the in-process tests, tests/test_weights.py, cover the Xet path)
    env = {**os.environ, "HOME": str(checkout / "home"), "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_XET": "1"}
    for argv in shell_commands(block):
        command_env = dict(env)
        while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
            key, value = argv.pop(0).split("=", 1)
            command_env[key] = value
        if is_install(argv):
            check_install(argv)
            continue
        assert argv[0] in PROGRAMS, f"{doc}: add {argv[0]!r} to this test's PROGRAMS to run the example {argv}"
        full = [*PROGRAMS[argv[0]], *argv[1:], *smoke_arguments(argv)]
        result = subprocess.run(full, cwd=checkout, env=command_env, capture_output=True, text=True, timeout=HANG)
        output = result.stdout[-3000:] + result.stderr[-3000:]
        assert result.returncode == 0, f"{doc}: `{shlex.join(argv)}` failed:\n{output}"


def test_readme_setup_commands_are_there():
    """.ci/run runs these two verbatim; they install the project and run the main job and the tests."""
    main_job, tests = SETUP_COMMANDS
    assert "pip install" in main_job and "examples/quickstart.py" in main_job
    assert "pip install" in tests and "pytest" in tests and "mkdocs build --strict" in tests


# --- the model table and the paper-row pages ----------------------------------------------------------------------


def model_table(header: str = "| model | parameters |", page: str = "models.md") -> dict[str, list[str]]:
    """The rows of the table in ``docs/<page>`` whose header starts with ``header``, keyed by model name."""
    rows, inside = {}, False
    for line in (ROOT / "docs" / page).read_text().splitlines():
        inside = line.startswith(header) or (inside and line.startswith("|"))
        match = re.match(r"\| `([a-z0-9_]+)` \|(.*)\|$", line)
        if inside and match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_every_model_has_a_row_in_both_tables_and_the_paper_rows_are_in_table_order():
    assert sorted(model_table()) == sorted(model_table("| model | paper row |")) == sorted(PACKAGE_MODELS)
    rows = [cells[0] for cells in model_table("| model | paper row |").values() if cells[0].startswith("Table 3")]
    assert rows == sorted(rows, key=lambda row: int(re.search(r"row (\d+)", row).group(1)))


@pytest.mark.parametrize("name", PACKAGE_MODELS)
def test_model_table_counts_match_code(name):
    params, macs, input_size, minimum, with_aux, _tags = model_table()[name]
    model = inceptionzoo.create_model(name)
    assert int(params.replace(",", "")) == count_parameters(model)
    assert macs == f"{count_macs(model) / 1e9:.3f} G"
    height, width = model.pretrained_cfg["input_size"][1:]
    assert input_size == f"{height}x{width}"
    assert minimum == f"{model.min_input_size[0]}x{model.min_input_size[1]}"
    if "aux_logits" in inspect.signature(type(model).__init__).parameters:
        aux = inceptionzoo.create_model(name, aux_logits=True)
        assert with_aux == f"{aux.min_input_size[0]}x{aux.min_input_size[1]}"


FAMILY = model_table("| model | paper |", "paper/family.md")


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_the_family_page_matches_the_code_and_the_weights(name):
    """docs/paper/family.md: counts from the code, and each tag's published accuracy from its pretrained config."""
    _paper, params, macs, _paper_errors, tags, accuracies = FAMILY[name]
    model = inceptionzoo.create_model(name)
    assert int(params.replace(",", "")) == count_parameters(model)
    assert macs == f"{count_macs(model) / 1e9:.3f} G"
    listed = re.findall(r"`([a-z0-9_]+)`", tags)
    assert sorted(f"{name}.{tag}" for tag in listed) == inceptionzoo.list_pretrained(f"{name}.*")
    published = [cfg for cfg in map(inceptionzoo.get_pretrained_cfg, (f"{name}.{t}" for t in listed)) if cfg.top1]
    if published:
        assert accuracies.split(", ") == [f"{cfg.top1:.3f}% / {cfg.top5:.3f}%" for cfg in published]
    else:
        assert accuracies.startswith("-")


FIGURES_HEADER = "| model | parameters | multiply-adds | paper top-1 error | paper top-5 error | paper cost |"


@pytest.mark.parametrize("name", PACKAGE_MODELS)
def test_each_paper_row_has_a_page_that_matches_the_code(name):
    """A page per row of Table 3 and of Section 9, titled with the row, whose figures are the model's."""
    model = inceptionzoo.create_model(name)
    page = ROOT / "docs" / "paper" / f"{name}.md"
    row = model.pretrained_cfg["paper_row"]
    assert page.is_file() == row.startswith(("Table 3", "Section 9")), f"{name} ({row}): page {page.name}"
    if not page.is_file():
        return
    lines = page.read_text().splitlines()
    assert lines[0].startswith(f"# {row.split(':')[0]}:"), lines[0]
    figures = lines[lines.index(FIGURES_HEADER) + 2]
    model_cell, params, macs, *_ = [cell.strip() for cell in figures.strip("|").split("|")]
    assert model_cell == f"`{name}`"
    assert int(params.replace(",", "")) == count_parameters(model)
    assert macs == f"{count_macs(model) / 1e9:.3f} G"
    assert f"({name}.md)" in (ROOT / "docs" / "paper" / "index.md").read_text()


@pytest.mark.slow
def test_the_built_site_shows_no_raw_sphinx_roles_and_the_whole_model_interface(tmp_path):
    """mkdocstrings renders Markdown, not reStructuredText: a ``:func:`x``` in a docstring shows up raw."""
    root = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=root, capture_output=True, text=True, timeout=HANG)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]  # strict: a docstring griffe cannot read fails here too
    raw = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):(?:`|<code>)")
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) > 20
    shown = {page.relative_to(tmp_path): raw.findall(page.read_text()) for page in pages}
    assert not {page: found for page, found in shown.items() if found}
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    for method in ("reset_classifier", "forward_head", "forward_intermediates", "get_classifier",
                   "set_grad_checkpointing", "group_matcher"):  # fmt: skip
        assert f'id="inceptionzoo.models._base.InceptionNet.{method}"' in reference, method
