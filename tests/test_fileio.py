"""gluekit.fileio: a file is replaced whole or not at all."""
import json

import pytest

from gluekit.fileio import atomic_write, write_json, write_text


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "run_summary.json"
    write_json(path, {"train": {"loss": 1.5}, "note": "中文"})
    before = path.read_text(encoding="utf-8")
    assert json.loads(before) == {"train": {"loss": 1.5}, "note": "中文"} and "中文" in before  # readable, not \uXXXX
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write('{"train": ')  # half a file, then the writer dies
            raise RuntimeError("killed")
    assert path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_summary.json"]  # no .tmp left behind


def test_the_new_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "sub" / "preds.jsonl"  # the folder is created
    with atomic_write(path) as f:
        f.write("line 1\n")
        assert not path.exists() and (tmp_path / "sub" / "preds.jsonl.tmp").exists()
    assert path.read_text(encoding="utf-8") == "line 1\n"
    assert write_text(path, "replaced\n") == path and path.read_text(encoding="utf-8") == "replaced\n"
