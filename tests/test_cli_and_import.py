import json
import subprocess
import sys

import pytest

from inceptionzoo.cli import main


@pytest.mark.lowest
def test_list(capsys):
    assert main(["list"]) == 0
    assert "inception_v3" in capsys.readouterr().out.split()
    assert main(["list", "inception_v3*"]) == 0
    assert main(["list", "resnet*"]) == 1


def test_list_pretrained_matches_library(capsys):
    import inceptionzoo

    code = main(["list", "--pretrained"])
    printed = capsys.readouterr().out.split()
    assert printed == inceptionzoo.list_pretrained()
    assert code == (0 if printed else 1)


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
    assert "Did you mean: inception_v3" in capsys.readouterr().err


@pytest.mark.parametrize("entry", [["-m", "inceptionzoo"]])
def test_python_dash_m(entry):
    result = subprocess.run([sys.executable, *entry, "list"], capture_output=True, text=True, check=True)
    assert "inception_v3" in result.stdout


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
