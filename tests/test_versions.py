"""docs/versions.md, pyproject.toml and .ci/lowest-versions.txt agree, so the supported ranges cannot drift."""

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

pytestmark = pytest.mark.lowest

ROOT = Path(__file__).resolve().parents[1]


def lowest_versions() -> dict[str, str]:
    lines = (ROOT / ".ci" / "lowest-versions.txt").read_text().splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {pin.name: str(next(iter(pin.specifier)).version) for pin in pins}


def documented() -> dict[str, tuple[str, str]]:
    """The table of docs/versions.md: package -> (lowest, newest tested)."""
    rows = {}
    for line in (ROOT / "docs" / "versions.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"[\d.]+", cells[1]) and re.fullmatch(r"[\d.]+", cells[2]):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_lowest_versions_are_the_declared_lower_bounds_and_the_documented_ones():
    pins, table = lowest_versions(), documented()
    bounds = {
        (requirement := Requirement(text)).name: str(next(iter(requirement.specifier)))
        for text in project()["dependencies"]
    }
    assert set(pins) == set(bounds) == set(table) - {"Python"}
    for name, version in pins.items():
        assert bounds[name].startswith(">=") and Version(bounds[name][2:]) == Version(version), name
        assert table[name][0] == version, name
    assert project()["requires-python"] == f">={table['Python'][0]}"


def minor(version: str) -> tuple[int, int]:
    major, minor_version = Version(version).release[:2]
    return major, minor_version


def test_the_declared_pythons_are_the_tested_range_and_ci_runs_the_newest():
    """One classifier for each Python from the lowest to the newest tested, and .ci/run's newest-versions step asks
    for that newest one."""
    lowest, newest = (minor(version) for version in documented()["Python"])
    declared = {
        minor(classifier.rsplit(" :: ", 1)[1])
        for classifier in project()["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: \d+\.\d+", classifier)
    }
    assert declared == {(lowest[0], m) for m in range(lowest[1], newest[1] + 1)}
    run = (ROOT / ".ci" / "run").read_text()
    assert f"python{newest[0]}.{newest[1]}" in run and f"sys.version_info[:2] == {newest}" in run


def test_the_documented_newest_versions_were_tested():
    """The run that installs the newest versions has at least the ones the table names (it may have newer ones)."""
    table, pins = documented(), lowest_versions()
    installed = {name: importlib.metadata.version(name) for name in pins}
    if all(Version(installed[name]) == Version(version) for name, version in pins.items()):
        pytest.skip("this is the lowest-versions run")
    for name in pins:
        assert Version(installed[name]) >= Version(table[name][1]), name
    # this Python lies in the tested range, and on the newest minor version it is at least the one the table names
    running = Version(".".join(map(str, sys.version_info[:3])))
    lowest, newest = (Version(version) for version in table["Python"])
    assert minor(str(lowest)) <= sys.version_info[:2] <= minor(str(newest))
    if sys.version_info[:2] == minor(str(newest)):
        assert running >= newest
