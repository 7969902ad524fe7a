"""Which ``lora.yaml`` field each notebook cell demonstrates (the course's coverage of the seed config).

A cell demonstrates a field when it carries a marker line ``# lora.yaml: training_args.save_steps``
and its code really uses the field (the last part of the path appears outside the marker).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

MARKER = re.compile(r"^\s*#\s*lora\.yaml:\s*([\w.]+)\s*$", re.M)
COMMENTED_KEY = re.compile(r"^(\s*)#\s*(\w+):", re.M)


def lora_yaml_fields(path: str | Path) -> list[str]:
    """Leaf field paths of a lora.yaml, including keys that are commented out (``# deepspeed: ...``)."""
    from ruamel.yaml import YAML

    text = Path(path).read_text(encoding="utf-8")
    tree = YAML(typ="safe", pure=True).load(text)
    out: list[str] = []

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out.append(f"{prefix}{k}")

    walk(tree, "")
    # a commented key is a field too: place it under the section whose indentation it shares
    for m in COMMENTED_KEY.finditer(text):
        indent, key = len(m.group(1)), m.group(2)
        before = text[:m.start()].splitlines()
        parent = next((ln.split(":")[0].strip() for ln in reversed(before)
                       if ln.strip() and not ln.lstrip().startswith("#") and len(ln) - len(ln.lstrip()) < indent), None)
        out.append(f"{parent}.{key}" if indent and parent else key)
    return out


def field_coverage(notebook_dir: str | Path) -> dict[str, list[tuple[str, int]]]:
    """field path -> [(notebook name, code-cell index)] for every marked cell that uses the field."""
    table: dict[str, list[tuple[str, int]]] = {}
    for nb in sorted(Path(notebook_dir).glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        for i, cell in enumerate(code):
            src = "".join(cell["source"])
            body = MARKER.sub("", src)
            for path in MARKER.findall(src):
                if path.rsplit(".", 1)[-1] in body:
                    table.setdefault(path, []).append((nb.name, i))
    return table
