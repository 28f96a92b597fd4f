"""The command line, every command in one place (`inceptionzoo list/info/download/train`, the examples' own
flags), and what `import inceptionzoo` costs before a command runs."""

import dataclasses
import json
import subprocess
import sys

import pytest

import inceptionzoo
from conftest import CLIENTS
from inceptionzoo.cli import main
from inceptionzoo.train import TrainConfig
from inceptionzoo.train.command import build_parser
from inceptionzoo.train.command import main as train_main


@pytest.mark.lowest
def test_list_is_a_table_of_sizes_costs_and_accuracy(capsys):
    import inceptionzoo

    assert main(["list", "inception_v*"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["model", "weights", "params", "(M)", "GMACs", "input", "top-1"]
    table = {row.split()[0]: row.split()[1:] for row in rows}
    assert list(table) == inceptionzoo.list_models("inception_v*")
    assert table["inception_v3"] == ["tv_in1k", "23.83", "5.71", "299x299", "77.47"]  # timm's and torchvision's
    assert table["inception_v1"][0] == "-" and table["inception_v1"][-1] == "-"  # no weights, no accuracy
    assert main(["list", "resnet*"]) == 1


def test_list_suggests_close_names_when_nothing_matches(capsys):
    assert main(["list", "inceptoin*"]) == 1
    err = capsys.readouterr().err
    assert "no models match 'inceptoin*'" in err and "did you mean" in err.lower() and "inception_v1" in err
    assert main(["list", "inception_v9"]) == 1  # no wildcard: the close registered names
    assert "inception_v" in capsys.readouterr().err.split("mean", 1)[1]
    assert main(["list", "--pretrained", "inceptoin_v3*"]) == 1
    err = capsys.readouterr().err
    assert "no pretrained weights match" in err and "inception_v3." in err  # weight tags for --pretrained
    assert main(["list", "zzzz*"]) == 1  # nothing close: no suggestion, the way to see every name
    err = capsys.readouterr().err
    assert "mean" not in err and "inceptionzoo list" in err


def test_list_names_and_pretrained_match_the_library(capsys):
    import inceptionzoo

    assert main(["list", "--names"]) == 0
    assert capsys.readouterr().out.split() == inceptionzoo.list_models()
    code = main(["list", "--pretrained", "--names"])
    printed = capsys.readouterr().out.split()
    assert printed == inceptionzoo.list_pretrained()
    assert code == (0 if printed else 1)


def test_bare_command_prints_the_help_and_version_is_shown(capsys):
    assert main([]) == 0
    assert "usage: inceptionzoo" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("inceptionzoo ")


@pytest.mark.lowest
def test_info_json(capsys):
    assert main(["info", "inception_v3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 23_834_568
    assert 5.6e9 < info["macs"] < 5.8e9
    assert info["min_input_size"] == [3, 75, 75]
    assert [tap["module"] for tap in info["feature_info"]][-1] == "Mixed_7c"


def test_info_text_and_errors(capsys):
    assert main(["info", "inception_v3"]) == 0
    assert "multiply-adds" in capsys.readouterr().out
    assert main(["info", "inceptoin_v3"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean: inception_v3" in err and "run `inceptionzoo list`" in err
    assert main(["info", "inception_v3.tf_in1k"]) == 0
    out = capsys.readouterr().out
    assert "hf-hub:timm/inception_v3.tf_in1k" in out and "apache-2.0" in out and "top-1 77.87%" in out
    assert "crop_pct 0.875" in out
    assert main(["info", "inception_v3.tv_in1k"]) == 0
    assert "top-1 77.47%" in capsys.readouterr().out  # each tag its own weights
    assert main(["info", "inception_v3_fid.tf_2015_12_05"]) == 0  # FID features: no accuracy to show
    out = capsys.readouterr().out
    assert "no ImageNet accuracy published" in out and "pt_inception-2015-12-05-6726825d.pth" in out
    assert main(["info", "googlenet"]) == 0 and "torchvision's googlenet" in capsys.readouterr().out  # an alias
    assert main(["info", "inception_v3.tv_int8_in1k"]) == 0
    out = capsys.readouterr().out
    assert "inception_v3_google_fbgemm-a2837893.pth" in out and "packed for the fbgemm engine" in out


@pytest.mark.slow
@pytest.mark.parametrize("entry", [["-m", "inceptionzoo"]])
def test_python_dash_m(entry):
    result = subprocess.run([sys.executable, *entry, "list"], capture_output=True, text=True, check=True)
    assert "inception_v3" in result.stdout


@pytest.mark.slow
@pytest.mark.lowest
def test_import_is_light_and_offline():
    """Importing and building a model opens no network connection and loads no training code."""
    code = """
import socket, sys
def refuse(*args, **kwargs):
    raise AssertionError(f"network access: {args}")
socket.socket.connect = refuse
socket.create_connection = refuse
import inceptionzoo
inceptionzoo.create_model("inception_v3")
loaded = [m for m in sys.modules if m.startswith("inceptionzoo.train") or m == "matplotlib"]
assert not loaded, loaded
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.slow
@pytest.mark.lowest
def test_help_and_version_import_neither_torch_nor_timm():
    """``inceptionzoo --help`` / ``--version`` and ``import inceptionzoo`` are instant: the heavy imports wait for
    the first public name used, which then finds every model registered."""
    code = """
import sys
import inceptionzoo, inceptionzoo.cli
for argv in (["--help"], ["--version"], ["list", "--help"]):
    try:
        inceptionzoo.cli.main(argv)
    except SystemExit as done:
        assert done.code == 0, argv
heavy = sorted({"torch", "timm", "torchvision"} & set(sys.modules))
assert not heavy, heavy
assert set(inceptionzoo.__all__) == {"__version__", *inceptionzoo._EXPORTS} <= set(dir(inceptionzoo))
assert len(inceptionzoo.list_models()) > 10 and "torch" in sys.modules
try:
    inceptionzoo.create_modle
except AttributeError as error:
    assert "create_modle" in str(error)
else:
    raise AssertionError("a misspelt name is an AttributeError")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"inceptionzoo {inceptionzoo_version()}" in result.stdout


def inceptionzoo_version() -> str:
    """The version written once, in ``inceptionzoo.__version__``, is also the installed package's metadata."""
    from importlib.metadata import version

    import inceptionzoo

    assert version("inceptionzoo") == inceptionzoo.__version__
    return inceptionzoo.__version__


def test_the_cifar_example_fails_without_data_and_shows_its_own_defaults(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "finetune_cifar10.py"
    spec = importlib.util.spec_from_file_location("finetune_cifar10", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.SHARED_COPY = tmp_path / "missing.tar.gz"
    assert example.run([]) == 2  # nothing to train on is an error, not a success
    assert "nothing to train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        example.run(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    # the model's help names its default itself; the example's own value shows there, once
    assert "default: inception_fast_cifar" in shown and "[default here: inception_fast_cifar]" not in shown
    assert "default: inception_v1_cifar" not in shown
    # what a run takes differs by CPU kind: the help names the kinds and where the minutes are
    assert "AMX" in shown and "AVX-512-BF16" in shown and "docs/results.md" in shown


@pytest.mark.slow
def test_cli_help_explains_every_option(capsys):
    help_text = build_parser().format_help()
    for field in dataclasses.fields(TrainConfig):
        assert f"--{field.name.replace('_', '-')}" in help_text
    for command in ([sys.executable, "-m", "inceptionzoo", "train", "--help"],
                    [sys.executable, "-m", "inceptionzoo.train", "--help"]):  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)  # a bound on a hang
        assert result.returncode == 0 and "--resume" in result.stdout and "torchrun" in result.stdout
    assert train_main(["--data", "/nowhere/at/all", "--output", "/tmp/unused-run", "--no-progress"]) == 2
    assert "no dataset at /nowhere/at/all" in capsys.readouterr().err


@pytest.mark.lowest
@CLIENTS
def test_cli_download_fills_the_cache_for_offline_use(hub, monkeypatch, capsys):
    assert main(["download", "inception_v3.tf_in1k"]) == 0
    assert "model.safetensors" in capsys.readouterr().out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    inceptionzoo.create_model("inception_v3.tf_in1k", pretrained=True)
    assert main(["download", "inception_v3.tv_in1k"]) == 2  # offline and not cached: a clear error, exit code 2
    err = capsys.readouterr().err
    assert "not in the cache" in err
    # the download command itself is what cannot fetch: it says to unset HF_HUB_OFFLINE or copy a cache over, and
    # does not send people back to `inceptionzoo download` where there is network as if they had not just run it
    assert "unset HF_HUB_OFFLINE" in err and "copy" in err and "run `inceptionzoo download" not in err
    assert err.index("unset HF_HUB_OFFLINE") < err.index("copy")
