"""The course covers every lora.yaml field, and its stored outputs come from clean runs."""
import json
import pathlib
import re

from gluekit.course.coverage import field_coverage, lora_yaml_fields

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_lora_yaml_has_30_leaf_fields_including_commented_deepspeed():
    fields = lora_yaml_fields(ROOT / "configs" / "lora.yaml")
    assert len(fields) == 30 and len(set(fields)) == 30
    assert "training_args.deepspeed" in fields and "training_args.generation_config.max_new_tokens" in fields


def test_every_field_is_demonstrated_by_a_notebook_cell():
    fields = lora_yaml_fields(ROOT / "configs" / "lora.yaml")
    table = field_coverage(ROOT / "notebooks")
    missing = [f for f in fields if f not in table]
    assert not missing, f"fields without a demonstrating cell: {missing}"
    assert not set(table) - set(fields), f"markers naming no lora.yaml field: {set(table) - set(fields)}"


def test_stored_outputs_come_from_one_clean_run():
    assert NOTEBOOKS
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        counts = [c.get("execution_count") for c in cells if c["cell_type"] == "code"]
        assert counts == list(range(1, len(counts) + 1)), f"{nb.name}: execution counts {counts}"
        for i, c in enumerate(cells):
            tags = set(c.get("metadata", {}).get("tags", []))
            for o in c.get("outputs", []):
                assert o.get("output_type") != "error" or tags & {"raises-exception", "nbval-raises-exception"}, f"{nb.name} cell {i}"
                assert not re.search(r"/(work|tmp|root|home)/", json.dumps(o)), f"{nb.name} cell {i} shows a machine path"


def test_prose_is_bilingual():
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        md = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
        assert md, nb.name
        both = [m for m in md if cjk.search(m) and re.search(r"[A-Za-z]{4,} [A-Za-z]{3,}", m)]
        assert len(both) >= 0.8 * len(md), f"{nb.name}: {len(md) - len(both)} markdown cells are not bilingual"
        assert "recap" in md[-1].lower() or "小结" in md[-1] or any("recap" in m.lower() for m in md[-3:]), nb.name
