"""The installed package: a wheel built from this repository, installed into a fresh folder and used
from an empty working directory (issue 14's "Done when"). No training runs here.

The wheel is built from a copy of the repository's top-level files and ``gluekit/`` (what pyproject
builds from), so the build leaves no ``build/`` or ``*.egg-info`` in the checkout.
"""
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Run in the empty folder by the installed package's python: every module imports, the course's claim
# checks find their configs, and ``python -m gluekit configs`` (run here with runpy, as ``-m`` does,
# to save starting another interpreter) lists the shipped files.
PROBE = r"""
import contextlib, importlib, io, json, pkgutil, runpy, sys
import gluekit
mods = sorted(m.name for m in pkgutil.walk_packages(gluekit.__path__, "gluekit.") if not m.name.endswith("__main__"))
for name in mods:
    importlib.import_module(name)
from gluekit.course import claims
from gluekit.config import load_config
loaded = {str(p): load_config(p).training_args["max_steps"] for p in (claims.LORA_YAML, claims.TINY_YAML)}
sys.argv, out = ["gluekit", "configs"], io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    runpy.run_module("gluekit", run_name="__main__", alter_sys=True)
json.dump({"file": gluekit.__file__, "modules": mods, "claims_configs": loaded, "configs": out.getvalue()}, sys.stdout)
"""


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder, wheel path, an empty working folder, the environment that sees only the installed copy)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for p in REPO.iterdir():
        if p.is_file():
            shutil.copy2(p, src / p.name)
    shutil.copytree(REPO / "gluekit", src / "gluekit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir", "-q", "-w", tmp / "dist", src])
    (wheel,) = (tmp / "dist").glob("gluekit-*.whl")
    site = tmp / "site"
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", site, wheel])
    empty = tmp / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # not the checkout: the installed copy only
    return site, wheel, empty, env


def test_wheel_holds_every_module_and_data_file(installed):
    _, wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "gluekit").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert source <= names, sorted(source - names)
    assert {f"gluekit/configs/{n}" for n in ("lora.yaml", "tiny.yaml", "sft.yaml", "ptuning_v2.yaml",
                                              "ds_zero_2.json", "ds_zero_3.json")} <= names


def test_installed_package_imports_and_finds_its_configs(installed):
    site, _, empty, env = installed
    r = run([sys.executable, "-c", PROBE], cwd=empty, env=env)
    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(d["file"]).is_relative_to(site)
    expected = sorted(m.name for m in pkgutil.walk_packages([str(REPO / "gluekit")], "gluekit.")
                      if not m.name.endswith("__main__"))
    assert d["modules"] == expected and "gluekit.config.rules" in expected
    shipped = site / "gluekit" / "configs"
    assert d["claims_configs"] == {str(shipped / "lora.yaml"): 3000, str(shipped / "tiny.yaml"): 600}
    for name in ("ds_zero_2.json", "ds_zero_3.json", "lora.yaml", "ptuning_v2.yaml", "sft.yaml", "tiny.yaml"):
        assert f"  {name} " in d["configs"] and f"  {shipped / name}\n" in d["configs"]
    assert list(empty.iterdir()) == []


def test_installed_cli_plans_a_bare_config_name(installed):
    site, _, empty, env = installed
    r = run([sys.executable, "-m", "gluekit", "plan", "tiny.yaml"], cwd=empty, env=env)
    shipped = site / "gluekit" / "configs" / "tiny.yaml"
    assert f"note: config tiny.yaml: the copy shipped with gluekit ({shipped})." in r.stdout
    assert "steps per epoch 75, max_steps 600" in r.stdout  # the 600 demo conversations are shipped too
    assert list(empty.iterdir()) == []
