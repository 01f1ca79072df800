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

from credence_common.contracts.errors import Conflict, Forbidden

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

    def __post_init__(self) -> None:
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


def failed_gate(rules: CompositeRules, marks: CompositeMarks) -> str | None:
    """The first gate the marks fail, whatever the score: ``disqualification`` (a disqualifying violation),
    ``qualification_review`` (not ``pass`` when the program requires it) or ``homework`` (not ``complete`` when
    the program requires it); None when every gate is passed. Only exactly ``pass`` / ``complete`` passes a gate,
    so a withheld or unknown mark fails it."""
    if marks.violation == "disqualification":
        return "disqualification"
    if rules.requires_qualification_review and marks.qualification_review != "pass":
        return "qualification_review"
    if rules.requires_homework and marks.homework_completion != "complete":
        return "homework"
    return None


def composite_outcome(rules: CompositeRules, marks: CompositeMarks, final_score: int | None = None) -> Outcome:
    """The one place a composite result's gates and pass mark decide it: failed if any gate fails, otherwise the
    final score against the rules' pass mark. ``final_score``: a score set since the marks were imported (a
    re-check's correction, usecases/records.py), judged instead of the one the marks compute."""
    if failed_gate(rules, marks) is not None:
        return "failed"
    return evaluate(composite_final_score(rules, marks) if final_score is None else final_score, rules.pass_mark)


def result_outcome(kind: str, final_score: int, pass_mark: int, rules: CompositeRules | None = None,
                   marks: CompositeMarks | None = None) -> Outcome:
    """The one judgement of a result, at its release (usecases/__init__.py) and after a re-check's correction
    (usecases/records.py), so the two can never disagree. ``pass_mark``: a course's own, else the program's. A
    composite program's rules govern its results: their gates when the component marks are known, and their pass
    mark either way; the program's pass mark only for a program without rules. The final score is the one on
    record (computed from the marks at import, or corrected since)."""
    if kind == "course_based" or rules is None:
        return evaluate(final_score, pass_mark)
    if marks is None:
        return evaluate(final_score, rules.pass_mark)
    return composite_outcome(rules, marks, final_score=final_score)


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


# --- expert sign-off (composite programs) ---------------------------------------------------------------------
# A composite result's evaluation_state: None for a result no expert evaluates (course-based), otherwise
#   pending --two different experts agree--> agreed (their outcome)
#   pending --two different experts disagree--> held --a third expert decides--> decided (the decision)
# and a score changed before release sends it back to pending (usecases/records.py, usecases.record_results).
SETTLED = ("agreed", "decided")


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
# Roles (credence_common/contracts/staff_roles.py) say what a member of staff may do at all; these rules say who may not
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


def sign_offs_lapse(state: str | None, old_score: int, new_score: int) -> bool:
    """Whether changing an unreleased result's score voids its sign-offs (they are deleted and it is ``pending``
    again): the experts signed a different score, whatever state they had brought it to."""
    return state is not None and old_score != new_score


def refuse_conflict(conflict: DutyConflict | None) -> None:
    """A separation-of-duties conflict is a 403 naming what the person already did (nothing is changed)."""
    if conflict is not None:
        raise Forbidden(conflict.code, conflict.message, [{"field": "duty", "message": conflict.duty}])


def refuse_unless_evaluable(state: str | None, published: bool) -> None:
    """Only an unreleased composite result is signed off or decided."""
    if state is None:
        raise Conflict("no_evaluation_needed", "This program's results are not evaluated by experts.")
    if published:
        raise Conflict("result_already_published", "The result is already published.")


def sign_off(state: str, decisions: dict[str, str], expert: str, decision: str,
             result_recorders: set[str]) -> tuple[str, str | None]:
    """One expert's sign-off of a result in ``state`` that ``decisions`` (expert -> decision) already signed:
    the (state, outcome) it leads to, or the refusal (in this order: a recorder 403 same_person_cannot_sign, a
    settled result 409 already_evaluated, a second signature 409 already_signed, a held one 409
    held_for_decision)."""
    refuse_conflict(sign_off_conflict(expert, result_recorders))
    if state in SETTLED:
        raise Conflict("already_evaluated", "Two experts have already settled this result.")
    if expert in decisions:
        raise Conflict("already_signed", "You have already signed this result; a second, different expert must.")
    if state == "held":
        raise Conflict("held_for_decision", "The two experts disagree; the result waits for a decision.")
    return evaluation_state({**decisions, expert: decision})


def decide_held(state: str, decider: str, decision: str, signers: set[str],
                result_recorders: set[str]) -> tuple[str, str]:
    """A third expert settles a disagreement: (decided, the decision), or the refusal (a result not held 409
    not_held; one of the signers or a recorder 403 same_person_cannot_sign)."""
    if state != "held":
        raise Conflict("not_held", "Only a result the experts disagree on waits for a decision.")
    refuse_conflict(decision_conflict(decider, result_recorders, signers))
    return "decided", decision
