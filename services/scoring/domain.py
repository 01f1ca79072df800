"""Scoring rules in plain Python."""

from __future__ import annotations

from typing import Literal

Outcome = Literal["passed", "failed"]


def evaluate(final_score: int, pass_mark: int) -> Outcome:
    """The expert panel's evaluation of a final score: passed at or above the program's pass mark."""
    if not 0 <= final_score <= 100:
        raise ValueError("final_score must be between 0 and 100")
    return "passed" if final_score >= pass_mark else "failed"


def visible_status(published: bool, outcome: str | None) -> str:
    """Before release a candidate sees only 'evaluating' (正在评定), never the score."""
    return outcome if published and outcome else "evaluating"
