"""binder/ must install what pyproject.toml asks for, at versions it allows."""
import pathlib
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent


def binder_pins():
    pins = {}
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"binder pin {line!r} must be exact"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_binder_pins_satisfy_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["notebooks"]
    pins = binder_pins()
    for text in reqs:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but binder/requirements.txt does not pin it"
        assert req.specifier.contains(pins[name], prereleases=True), f"binder pins {name}=={pins[name]}, pyproject wants {req.specifier}"


def test_binder_torch_is_the_cpu_build():
    assert str(binder_pins()["torch"]).endswith("+cpu")
    assert "download.pytorch.org/whl/cpu" in (ROOT / "binder" / "requirements.txt").read_text()


def test_postbuild_installs_the_package():
    text = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in text


def test_no_jupyter_news_popup_in_lab_sh_and_binder():
    """scripts/lab.sh and Binder start JupyterLab with the shipped settings that turn the news pop-up off
    (tests/test_browser.py starts its server with lab.sh's flags and checks the pop-up is absent)."""
    import json
    import re

    settings = ROOT / "scripts" / "lab-settings" / "overrides.json"
    assert json.loads(settings.read_text()) == {
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
    lab = (ROOT / "scripts" / "lab.sh").read_text()
    flags = [m.group(0) for m in re.finditer(r'--LabApp\.[\w.]+=("[^"]*"|[^\s)]+)', lab)]
    assert flags == ['--LabApp.app_settings_dir="$PWD/scripts/lab-settings"', "--LabApp.news_url=None",
                     "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "scripts/lab-settings/overrides.json" in post and "share/jupyter/lab/settings" in post
