"""Checks the reliability tests share (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations


def one_line_error(err: str, stage: str) -> str:
    """The CLI's stderr, checked to be exactly one ``forecast <stage>: error: ...`` line and no traceback."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith(f"forecast {stage}: error: "), err
    return lines[-1]
