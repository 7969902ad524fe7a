"""gluekit.viz.compare: the before/after table of gluekit.generate.compare rows."""
from gluekit.viz.compare import before_after_html


def test_before_after_html_counts_all_rows_and_escapes():
    rows = [
        {"prompt": "成都属于哪个省?", "reference": "成都属于四川省。", "before": "<x>", "after": "成都属于四川省。",
         "before_ok": False, "after_ok": True},
        {"prompt": "q2", "reference": "r2", "before": "", "after": "r2", "before_ok": False, "after_ok": True},
        {"prompt": "q3", "reference": "r3", "before": "r3", "after": "no", "before_ok": True, "after_ok": False},
    ]
    out = before_after_html(rows, max_rows=2).data
    assert "exact answers before 1/3, after 2/3 (first 2 rows shown)" in out
    assert "&lt;x&gt;" in out and "<x>" not in out
    assert "(empty)" in out and "q3" not in out
    assert out.count("<tr>") == 3  # header + 2 rows
    long = [{**rows[0], "before": "很" * 100}]
    assert "很" * 40 + "…" in before_after_html(long).data and "很" * 41 not in before_after_html(long).data
    assert "很" * 100 in before_after_html(long, max_chars=None).data
