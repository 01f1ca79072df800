"""Scoring rules in plain Python: how a program turns marks into an outcome.

Two kinds of program. *Composite* (like the psychological-counsellor exam): the final score is computed
from the machine-exam score and the observed practical drill score with per-program weights; a violation
deducts points or disqualifies; a failed qualification review or incomplete homework fails the candidate
whatever the score. *Course-based* (like the self-study exam): every course is scored 0-100 against its own
pass mark; retakes are allowed (the best attempt counts) and the program is complete when every required
course has been passed.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Literal

Outcome = Literal["passed", "failed"]
VIOLATIONS = ("none", "deduction", "disqualification")


@dataclass(frozen=True)
class CompositeRules:
    pass_mark: int = 60
    machine_exam_weight_percent: int = 70
    drill_weight_percent: int = 30
    violation_deduction: int = 10
    requires_qualification_review: bool = True
    requires_homework: bool = True

    def __post_init__(self):
        if self.machine_exam_weight_percent + self.drill_weight_percent != 100:
            raise ValueError("the weights of the machine exam and the drill must add up to 100")
        if not 0 <= self.pass_mark <= 100 or self.violation_deduction < 0:
            raise ValueError("pass mark must be 0-100 and the deduction not negative")

    @classmethod
    def from_json(cls, text: str) -> CompositeRules:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self) -> str:
        """The formula as staff read it on the program page."""
        parts = [f"final = round({self.machine_exam_weight_percent}% × machine exam + "
                 f"{self.drill_weight_percent}% × practical drill)",
                 f"minus {self.violation_deduction} for a violation; 0 if disqualified",
                 f"passed at {self.pass_mark} or more"]
        if self.requires_qualification_review:
            parts.append("only with a passed qualification review")
        if self.requires_homework:
            parts.append("only with homework complete")
        return "; ".join(parts) + "."


@dataclass(frozen=True)
class CompositeMarks:
    machine_exam_score: int
    drill_score: int
    violation: str = "none"
    qualification_review: str = "pass"
    homework_completion: str = "complete"


def composite_final_score(rules: CompositeRules, marks: CompositeMarks) -> int:
    for score in (marks.machine_exam_score, marks.drill_score):
        if not 0 <= score <= 100:
            raise ValueError("scores must be between 0 and 100")
    if marks.violation == "disqualification":
        return 0
    # integer arithmetic, rounding half up: no float ever decides a pass
    weighted = (marks.machine_exam_score * rules.machine_exam_weight_percent
                + marks.drill_score * rules.drill_weight_percent)
    final = (weighted + 50) // 100
    if marks.violation == "deduction":
        final -= rules.violation_deduction
    return max(0, min(100, final))


def composite_outcome(rules: CompositeRules, marks: CompositeMarks) -> Outcome:
    if marks.violation == "disqualification":
        return "failed"
    if rules.requires_qualification_review and marks.qualification_review != "pass":
        return "failed"
    if rules.requires_homework and marks.homework_completion != "complete":
        return "failed"
    return "passed" if composite_final_score(rules, marks) >= rules.pass_mark else "failed"


def evaluate(final_score: int, pass_mark: int) -> Outcome:
    """A course (or a plain final score) against its pass mark."""
    if not 0 <= final_score <= 100:
        raise ValueError("final_score must be between 0 and 100")
    return "passed" if final_score >= pass_mark else "failed"


def same_name(written: str, registered: str) -> bool:
    """Whether a name in an exam centre's file is the registered one: spaces and letter case aside (``张 三``,
    ``ZHANG San``), and full-width forms read as the ordinary ones (NFKC), as clerks type them."""
    def key(name: str) -> str:
        return "".join(unicodedata.normalize("NFKC", name).split()).casefold()
    return key(written) == key(registered)


def review_window_ends_at(published_at: datetime | None, review_window_days: int) -> datetime | None:
    """Until when a released result may be re-checked (复核): the program's window, counted from the release.
    None before the release (no window has opened)."""
    return published_at + timedelta(days=review_window_days) if published_at is not None else None


def visible_status(published: bool, outcome: str | None) -> str:
    """Before release a candidate sees only 'evaluating' (正在评定), never the score."""
    return outcome if published and outcome else "evaluating"


def graduated(required_courses: set[str], passed_courses: set[str]) -> bool:
    """Course-based programs: complete once every required course has been passed at some sitting."""
    return bool(required_courses) and required_courses <= passed_courses


def evaluation_state(decisions: dict[str, str]) -> tuple[str, str | None]:
    """Two different experts must sign off: agreement settles the outcome, a disagreement is held for a
    decision. Returns (state, outcome)."""
    if len(decisions) < 2:
        return "pending", None
    outcomes = set(decisions.values())
    if len(outcomes) == 1:
        return "agreed", outcomes.pop()
    return "held", None


# --- separation of duties -----------------------------------------------------------------------------------
# Roles (credence_common/staff_roles.py) say what a member of staff may do at all; these rules say who may not
# take a part in one result's sign-off, whatever their roles: the recorder of a result never signs it off, and a
# third decider is neither of the two who signed (nor its recorder). Everyone is named by their actor subject.

SAME_PERSON_CANNOT_SIGN = "same_person_cannot_sign"
# the audit actions that set a result's score: whoever took one is a recorder of that result
SCORE_SETTING_ACTIONS = ("recorded", "corrected")


@dataclass(frozen=True)
class DutyConflict:
    """Why this person may not take this part: ``duty`` is what they already did to the result."""

    duty: Literal["recorded", "signed"]
    message: str
    code: str = SAME_PERSON_CANNOT_SIGN


def recorders(score_changes: list[tuple[str, str]], importer: str | None = None) -> set[str]:
    """Who recorded a result: each ``(action, actor)`` of its history that set its score (recorded, re-recorded or
    corrected), and who imported the file it came in (``importer``: the import batch's ``created_by``)."""
    found = {actor for action, actor in score_changes if action in SCORE_SETTING_ACTIONS}
    return found | ({importer} if importer else set())


def sign_off_conflict(expert: str, result_recorders: set[str]) -> DutyConflict | None:
    """An expert signing a composite result off: never one who recorded it (or changed its score)."""
    if expert in result_recorders:
        return DutyConflict("recorded", "You recorded this result or changed its score, so you cannot sign it off: "
                                        "two other experts must.")
    return None


def decision_conflict(decider: str, result_recorders: set[str], signers: set[str]) -> DutyConflict | None:
    """The third decider of a disagreement: neither of the two who signed, nor one who recorded the result."""
    if decider in signers:
        return DutyConflict("signed", "You signed this result off, so you cannot settle the disagreement: a third "
                                      "expert, neither of the two who signed, decides.")
    if decider in result_recorders:
        return DutyConflict("recorded", "You recorded this result or changed its score, so you cannot settle the "
                                        "disagreement: a third expert who did not decides.")
    return None


def recheck_conflict(closer: str, result_recorders: set[str]) -> DutyConflict | None:
    """Closing a re-check (复查) of a result: never by one who recorded it (or changed its score)."""
    if closer in result_recorders:
        return DutyConflict("recorded", "You recorded this result or changed its score, so you cannot close its "
                                        "re-check: an expert who did not closes it.")
    return None
