"""docs/architecture.md draws the apps' layers; the import contract enforces them. The
drawing and the contract must say the same thing (issue 14: a diagram checked by it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return layers


def _drawn_layers() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Apps", 1)[1]
    drawing = section.split("```", 2)[1]
    names = [re.match(r"(\w+)\s", line) for line in drawing.splitlines()]
    return [m.group(1) for m in names if m and m.group(1) not in {"config"}]


def test_the_drawn_layers_are_the_enforced_layers():
    assert _drawn_layers() == _contract_layers()


def test_the_contract_ignores_no_import():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for contract in config["contracts"]:
        assert not contract.get("ignore_imports"), f"{contract['name']} ignores imports"


def test_every_app_is_in_a_layer():
    apps = {p.parent.name for p in ROOT.glob("*/apps.py")}
    assert apps == set(_contract_layers())
