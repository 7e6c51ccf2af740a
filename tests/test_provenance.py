"""Benchmark and report sections in docs/: replaced in place, stamped with command, commit, date, machine."""

import sys

from agegender.provenance import publish, write_section


def test_write_section_replaces_only_its_own_section(tmp_path):
    doc = tmp_path / "B.md"
    doc.write_text("# Benchmarks\n\nintro\n\n## Kept\n\nold kept\n\n## Speed\n\nold speed\n\n## Last\n\nlast\n")
    write_section(str(doc), "Speed", "| a |\n|---|\n| 1 |", "python benchmarks/x.py --n 1")
    text = doc.read_text()
    assert "old speed" not in text and "| 1 |" in text
    assert text.index("## Kept") < text.index("## Speed") < text.index("## Last")  # stays where it was
    assert "old kept" in text and "last" in text and "intro" in text
    assert "`python benchmarks/x.py --n 1`" in text and "commit " in text and " UTC, " in text
    write_section(str(doc), "New one", "body", "cmd")
    assert doc.read_text().rstrip().endswith("body")  # a new section goes at the end


def test_publish_prints_and_writes_under_the_benchmark_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/somewhere/benchmarks/peers.py", "--fold", "0"])
    doc = tmp_path / "docs" / "B.md"
    publish(str(doc), "Peers", "table")
    assert capsys.readouterr().out.strip() == "table"
    assert "`python benchmarks/peers.py --fold 0`" in doc.read_text()
    publish(None, "Peers", "again")  # no docs: print only
    assert capsys.readouterr().out.strip() == "again"
