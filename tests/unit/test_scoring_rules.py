"""Composite programs' rules and the expert sign-off, without a database (services/scoring/domain/).

The final score, the outcome gates and the sign-off state machine are plain functions; the use cases that read
and write the database (usecases/__init__.py, usecases/records.py) only call them, so a rule changed here is
checked in a second.
The integration tests (tests/integration/test_scoring.py, test_result_imports.py, test_score_reviews.py) check
the same rules through the service on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from fractions import Fraction
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credence_common.contracts.errors import Conflict, Forbidden
from gateway.statuses import http_status
from services.scoring import domain, usecases
from services.scoring.domain import CompositeMarks, CompositeRules
from services.scoring.usecases import records

DEFAULT = CompositeRules()  # the seeded PSY-COUNSELLOR rules: 70 % + 30 %, minus 10, pass at 60, both gates


def rules(**changes) -> CompositeRules:
    return CompositeRules(**{**json.loads(DEFAULT.to_json()), **changes})


# --- the rules themselves ---------------------------------------------------------------------------------------

def test_the_default_rules_are_the_seeded_programs():
    assert json.loads(DEFAULT.to_json()) == {
        "pass_mark": 60, "machine_exam_weight_percent": 70, "drill_weight_percent": 30, "violation_deduction": 10,
        "requires_qualification_review": True, "requires_homework": True}
    assert CompositeRules.from_json(DEFAULT.to_json()) == DEFAULT
    assert DEFAULT.describe() == (
        "final = round(70% × machine exam + 30% × practical drill); minus 10 for a violation; 0 if disqualified; "
        "passed at 60 or more; only with a passed qualification review; only with homework complete.")
    assert rules(requires_qualification_review=False, requires_homework=False).describe().endswith(
        "passed at 60 or more.")


@pytest.mark.parametrize("changes, refusal", [
    ({"machine_exam_weight_percent": 70, "drill_weight_percent": 31}, "add up to 100"),
    ({"machine_exam_weight_percent": 69, "drill_weight_percent": 30}, "add up to 100"),
    ({"pass_mark": 101}, "pass mark"),
    ({"pass_mark": -1}, "pass mark"),
    ({"violation_deduction": -1}, "deduction"),
])
def test_rules_that_cannot_be_applied_are_refused(changes, refusal):
    with pytest.raises(ValueError, match=refusal):
        rules(**changes)


@pytest.mark.parametrize("changes", [
    {"pass_mark": 0}, {"pass_mark": 100}, {"violation_deduction": 0},
    {"machine_exam_weight_percent": 100, "drill_weight_percent": 0},
    {"machine_exam_weight_percent": 0, "drill_weight_percent": 100},
])
def test_rules_at_the_edges_are_accepted(changes):
    assert json.loads(rules(**changes).to_json()).items() >= changes.items()


# --- the final score --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("machine, drill, violation, changes, final", [
    (60, 60, "none", {}, 60),
    (100, 100, "none", {}, 100),
    (0, 0, "none", {}, 0),
    (100, 0, "none", {}, 70),  # the weights: 70 % machine exam
    (0, 100, "none", {}, 30),  # 30 % drill
    (80, 50, "none", {}, 71),  # 56 + 15
    # rounding half up, in integers
    (1, 0, "none", {}, 1),  # 0.7
    (0, 1, "none", {}, 0),  # 0.3
    (0, 5, "none", {}, 2),  # 1.5: half goes up
    (85, 0, "none", {}, 60),  # 59.5 reaches the pass mark
    (84, 2, "none", {}, 59),  # 59.4 does not
    (55, 50, "none", {}, 54),  # 53.5
    # a violation deducts its points, never below 0; a disqualification is 0
    (60, 60, "deduction", {}, 50),
    (70, 70, "deduction", {}, 60),
    (5, 5, "deduction", {}, 0),
    (10, 10, "deduction", {}, 0),
    (60, 60, "deduction", {"violation_deduction": 0}, 60),
    (60, 60, "deduction", {"violation_deduction": 25}, 35),
    (100, 100, "disqualification", {}, 0),
    (0, 0, "disqualification", {}, 0),
    # other weights
    (59, 60, "none", {"machine_exam_weight_percent": 50, "drill_weight_percent": 50}, 60),  # 59.5
    (40, 99, "none", {"machine_exam_weight_percent": 100, "drill_weight_percent": 0}, 40),
    (40, 99, "none", {"machine_exam_weight_percent": 0, "drill_weight_percent": 100}, 99),
])
def test_the_composite_final_score(machine, drill, violation, changes, final):
    marks = CompositeMarks(machine_exam_score=machine, drill_score=drill, violation=violation)
    assert domain.composite_final_score(rules(**changes), marks) == final


@pytest.mark.parametrize("machine, drill, violation", [
    (-1, 60, "none"), (101, 60, "none"), (60, -1, "none"), (60, 101, "none"),
    (101, 0, "disqualification"),  # a disqualification does not excuse a score that cannot be
])
def test_a_score_outside_0_to_100_is_refused(machine, drill, violation):
    with pytest.raises(ValueError, match="between 0 and 100"):
        domain.composite_final_score(DEFAULT, CompositeMarks(machine, drill, violation))


def test_both_scores_are_needed_and_the_other_marks_default_to_passing():
    with pytest.raises(TypeError):
        CompositeMarks(machine_exam_score=60)  # type: ignore[call-arg]  # no drill score, no composite score
    with pytest.raises(TypeError):
        CompositeMarks(drill_score=60)  # type: ignore[call-arg]
    assert CompositeMarks(60, 60) == CompositeMarks(60, 60, violation="none", qualification_review="pass",
                                                    homework_completion="complete")


scores = st.integers(min_value=0, max_value=100)
weights = st.integers(min_value=0, max_value=100)
violations = st.sampled_from(domain.VIOLATIONS)


@st.composite
def any_rules(draw) -> CompositeRules:
    machine = draw(weights)
    return CompositeRules(pass_mark=draw(scores), machine_exam_weight_percent=machine,
                          drill_weight_percent=100 - machine, violation_deduction=draw(st.integers(0, 100)),
                          requires_qualification_review=draw(st.booleans()), requires_homework=draw(st.booleans()))


@st.composite
def any_marks(draw) -> CompositeMarks:
    return CompositeMarks(draw(scores), draw(scores), draw(violations),
                          draw(st.sampled_from(["pass", "fail", "", "withheld", "PASS"])),
                          draw(st.sampled_from(["complete", "incomplete", "", "withheld"])))


@given(any_rules(), any_marks())
def test_the_final_score_is_the_exact_weighted_sum_rounded_half_up(rules_, marks):
    exact = (Fraction(marks.machine_exam_score * rules_.machine_exam_weight_percent, 100)
             + Fraction(marks.drill_score * rules_.drill_weight_percent, 100))
    expected = int(exact + Fraction(1, 2))  # floor(x + 1/2): half up, for x >= 0
    if marks.violation == "deduction":
        expected = max(0, expected - rules_.violation_deduction)
    if marks.violation == "disqualification":
        expected = 0
    assert domain.composite_final_score(rules_, marks) == expected


@given(any_rules(), scores, scores, violations, st.integers(0, 100))
def test_a_higher_score_never_lowers_the_final_score(rules_, machine, drill, violation, more):
    final = domain.composite_final_score(rules_, CompositeMarks(machine, drill, violation))
    assert 0 <= final <= 100
    assert domain.composite_final_score(rules_, CompositeMarks(min(100, machine + more), drill, violation)) >= final
    assert domain.composite_final_score(rules_, CompositeMarks(machine, min(100, drill + more), violation)) >= final


# --- the outcome and its gates ----------------------------------------------------------------------------------

@pytest.mark.parametrize("marks, changes, gate, outcome", [
    # no gate fails: the final score against the pass mark, passing exactly at it
    (CompositeMarks(60, 60), {}, None, "passed"),
    (CompositeMarks(59, 59), {}, None, "failed"),
    (CompositeMarks(61, 61), {}, None, "passed"),
    (CompositeMarks(85, 0), {}, None, "passed"),  # 59.5 rounds to 60
    (CompositeMarks(84, 2), {}, None, "failed"),  # 59.4 rounds to 59
    (CompositeMarks(70, 70, "deduction"), {}, None, "passed"),  # 70 - 10 = 60
    (CompositeMarks(69, 69, "deduction"), {}, None, "failed"),  # 59
    (CompositeMarks(80, 80), {"pass_mark": 80}, None, "passed"),
    (CompositeMarks(79, 80), {"pass_mark": 80}, None, "failed"),  # 79.3
    (CompositeMarks(0, 0), {"pass_mark": 0}, None, "passed"),
    (CompositeMarks(99, 100), {"pass_mark": 100}, None, "failed"),  # 99.3
    (CompositeMarks(100, 100), {"pass_mark": 100}, None, "passed"),
    # a disqualification fails whatever the score, whatever else the rules require
    (CompositeMarks(100, 100, "disqualification"), {}, "disqualification", "failed"),
    (CompositeMarks(100, 100, "disqualification"), {"pass_mark": 0}, "disqualification", "failed"),
    (CompositeMarks(100, 100, "disqualification"),
     {"requires_qualification_review": False, "requires_homework": False}, "disqualification", "failed"),
    (CompositeMarks(100, 100, "disqualification", "fail", "incomplete"), {}, "disqualification", "failed"),
    # the qualification review: only exactly "pass" passes it, when the program requires it
    (CompositeMarks(100, 100, qualification_review="fail"), {}, "qualification_review", "failed"),
    (CompositeMarks(100, 100, qualification_review="withheld"), {}, "qualification_review", "failed"),
    (CompositeMarks(100, 100, qualification_review=""), {}, "qualification_review", "failed"),
    (CompositeMarks(100, 100, qualification_review="PASS"), {}, "qualification_review", "failed"),
    (CompositeMarks(100, 100, qualification_review="fail", homework_completion="incomplete"), {},
     "qualification_review", "failed"),  # the first gate failed is named
    (CompositeMarks(60, 60, qualification_review="fail"), {"requires_qualification_review": False}, None, "passed"),
    (CompositeMarks(59, 59, qualification_review="fail"), {"requires_qualification_review": False}, None, "failed"),
    # homework: only exactly "complete" passes it, when the program requires it
    (CompositeMarks(100, 100, homework_completion="incomplete"), {}, "homework", "failed"),
    (CompositeMarks(100, 100, homework_completion="withheld"), {}, "homework", "failed"),
    (CompositeMarks(100, 100, homework_completion=""), {}, "homework", "failed"),
    (CompositeMarks(60, 60, homework_completion="incomplete"), {"requires_homework": False}, None, "passed"),
    (CompositeMarks(60, 60, "none", "fail", "incomplete"),
     {"requires_qualification_review": False, "requires_homework": False}, None, "passed"),
    (CompositeMarks(60, 60, "none", "fail", "incomplete"), {"requires_homework": False},
     "qualification_review", "failed"),
    (CompositeMarks(60, 60, "none", "fail", "incomplete"), {"requires_qualification_review": False},
     "homework", "failed"),
])
def test_the_composite_outcome_and_its_gates(marks, changes, gate, outcome):
    assert domain.failed_gate(rules(**changes), marks) == gate
    assert domain.composite_outcome(rules(**changes), marks) == outcome


@pytest.mark.parametrize("marks, final_score, outcome", [
    (CompositeMarks(0, 0), 60, "passed"),  # the corrected score is judged, not the one the marks compute
    (CompositeMarks(100, 100), 59, "failed"),
    (CompositeMarks(100, 100), 60, "passed"),
    (CompositeMarks(0, 0, "deduction"), 60, "passed"),  # the deduction is in the marks' score, not applied again
    (CompositeMarks(100, 100, "disqualification"), 100, "failed"),  # the gates still hold
    (CompositeMarks(100, 100, qualification_review="fail"), 100, "failed"),
    (CompositeMarks(100, 100, homework_completion="incomplete"), 100, "failed"),
])
def test_a_corrected_score_is_judged_against_the_same_gates_and_pass_mark(marks, final_score, outcome):
    assert domain.composite_outcome(DEFAULT, marks, final_score=final_score) == outcome


def test_a_corrected_score_outside_0_to_100_is_refused():
    with pytest.raises(ValueError, match="final_score"):
        domain.composite_outcome(DEFAULT, CompositeMarks(60, 60), final_score=101)


@given(any_rules(), any_marks(), st.one_of(st.none(), scores))
def test_the_outcome_never_passes_when_a_gate_fails(rules_, marks, final_score):
    outcome = domain.composite_outcome(rules_, marks, final_score=final_score)
    gated = (marks.violation == "disqualification"
             or (rules_.requires_qualification_review and marks.qualification_review != "pass")
             or (rules_.requires_homework and marks.homework_completion != "complete"))
    assert (domain.failed_gate(rules_, marks) is not None) == gated
    if gated:
        assert outcome == "failed"
    else:
        score = domain.composite_final_score(rules_, marks) if final_score is None else final_score
        assert outcome == ("passed" if score >= rules_.pass_mark else "failed")


@given(any_rules(), any_marks())
def test_release_and_recheck_agree_on_an_unchanged_score(rules_, marks):
    """Publication judges the marks' score, a re-check correction its new score: the same score, the same outcome."""
    assert domain.composite_outcome(rules_, marks) == domain.composite_outcome(
        rules_, marks, final_score=domain.composite_final_score(rules_, marks))


# how the use cases pick the rule for a stored result: no database, just what they read off the rows
COMPOSITE = SimpleNamespace(kind="composite", program_code="PSY-COUNSELLOR", pass_mark=60,
                            rules_json=rules(pass_mark=70).to_json())


def stored(marks: CompositeMarks | None, final_score: int = 0) -> SimpleNamespace:
    components = json.dumps(marks.__dict__) if marks is not None else None
    return SimpleNamespace(components_json=components, final_score=final_score, course_code="")


@pytest.mark.parametrize("program, result, score, outcome", [
    # imported marks: the gates and the rules' pass mark (70 here, the program row says 60)
    (COMPOSITE, stored(CompositeMarks(60, 60)), 70, "passed"),
    (COMPOSITE, stored(CompositeMarks(60, 60)), 69, "failed"),
    (COMPOSITE, stored(CompositeMarks(100, 100, homework_completion="incomplete")), 100, "failed"),
    (COMPOSITE, stored(CompositeMarks(100, 100, "disqualification")), 100, "failed"),
    # a result recorded without marks: the rules' pass mark, no gates
    (COMPOSITE, stored(None), 70, "passed"),
    (COMPOSITE, stored(None), 69, "failed"),
    # a program without rules: its own pass mark
    (SimpleNamespace(kind="composite", pass_mark=60, rules_json=None), stored(CompositeMarks(0, 0)), 60, "passed"),
    (SimpleNamespace(kind="composite", pass_mark=60, rules_json=None), stored(None), 59, "failed"),
])
def test_a_recheck_correction_judges_the_new_score_by_the_domain_rules(program, result, score, outcome):
    assert records._outcome_for(program, result, {}, score) == outcome


RULELESS = SimpleNamespace(kind="composite", pass_mark=60, rules_json=None)


@pytest.mark.parametrize("program, marks", [(COMPOSITE, CompositeMarks(60, 60)), (COMPOSITE, None),
                                            (COMPOSITE, CompositeMarks(100, 100, qualification_review="fail")),
                                            (RULELESS, CompositeMarks(0, 0)), (RULELESS, None)])
@pytest.mark.parametrize("score", [0, 59, 60, 69, 70, 100])
def test_release_and_a_recheck_judge_a_result_by_the_one_rule(program, marks, score):
    """Publication (usecases._outcome) and a re-check's correction (records._outcome_for) both go through
    domain.result_outcome: the score on record, the rules' gates and pass mark (70 here; the program row says 60),
    the program's pass mark only without rules. They used to differ for a result recorded without marks."""
    rules_ = CompositeRules.from_json(program.rules_json) if program.rules_json else None
    at_release = usecases._outcome(stored(marks, final_score=score), program, rules_, {})
    assert at_release == records._outcome_for(program, stored(marks), {}, score)
    assert at_release == domain.result_outcome(program.kind, score, program.pass_mark, rules_, marks)


# --- expert sign-off --------------------------------------------------------------------------------------------

RECORDERS = {"staff:clerk"}


def refusal(call) -> tuple[int, str, list]:
    with pytest.raises((Forbidden, Conflict)) as caught:
        call()
    return http_status(caught.value), caught.value.code, caught.value.details


@pytest.mark.parametrize("state, decisions, expert, decision, after", [
    ("pending", {}, "staff:a", "passed", ("pending", None)),  # one signature settles nothing
    ("pending", {}, "staff:a", "failed", ("pending", None)),
    ("pending", {"staff:a": "passed"}, "staff:b", "passed", ("agreed", "passed")),
    ("pending", {"staff:a": "failed"}, "staff:b", "failed", ("agreed", "failed")),
    ("pending", {"staff:a": "passed"}, "staff:b", "failed", ("held", None)),
    ("pending", {"staff:a": "failed"}, "staff:b", "passed", ("held", None)),
    # after a score change the state is pending again with no signatures, so the same experts may sign again
    ("pending", {}, "staff:b", "passed", ("pending", None)),
])
def test_what_each_sign_off_leads_to(state, decisions, expert, decision, after):
    assert domain.sign_off(state, decisions, expert, decision, RECORDERS) == after


SIGNED_A = {"staff:a": "passed"}
SIGNED_AB = {"staff:a": "passed", "staff:b": "passed"}
HELD_AB = {"staff:a": "passed", "staff:b": "failed"}


@pytest.mark.parametrize("state, decisions, expert, status, code", [
    # the recorder never signs, whatever the state: the 403 comes first
    ("pending", {}, "staff:clerk", 403, "same_person_cannot_sign"),
    ("pending", SIGNED_A, "staff:clerk", 403, "same_person_cannot_sign"),
    ("agreed", SIGNED_AB, "staff:clerk", 403, "same_person_cannot_sign"),
    ("held", HELD_AB, "staff:clerk", 403, "same_person_cannot_sign"),
    # a settled result takes no more signatures, even from one who signed it
    ("agreed", SIGNED_AB, "staff:c", 409, "already_evaluated"),
    ("agreed", SIGNED_AB, "staff:a", 409, "already_evaluated"),
    ("decided", HELD_AB, "staff:c", 409, "already_evaluated"),
    # each expert signs once: two distinct experts are needed
    ("pending", SIGNED_A, "staff:a", 409, "already_signed"),
    ("held", HELD_AB, "staff:b", 409, "already_signed"),
    # a disagreement waits for a decision, not a third signature
    ("held", HELD_AB, "staff:c", 409, "held_for_decision"),
])
def test_what_a_sign_off_is_refused_with(state, decisions, expert, status, code):
    assert refusal(lambda: domain.sign_off(state, decisions, expert, "passed", RECORDERS))[:2] == (status, code)


def test_the_refusal_of_a_recorder_names_what_they_did():
    assert refusal(lambda: domain.sign_off("pending", {}, "staff:clerk", "passed", RECORDERS)) == (
        403, "same_person_cannot_sign", [{"field": "duty", "message": "recorded"}])


def test_whoever_corrected_or_imported_a_result_is_a_recorder_and_cannot_sign_it():
    history = [("recorded", "staff:clerk"), ("corrected", "staff:fixer"), ("evaluated", "staff:a")]
    result_recorders = domain.recorders(history, importer="staff:importer")
    for person in ("staff:clerk", "staff:fixer", "staff:importer"):
        assert refusal(lambda p=person: domain.sign_off("pending", {}, p, "passed", result_recorders))[1] == \
            "same_person_cannot_sign"
    assert domain.sign_off("pending", {}, "staff:a", "passed", result_recorders) == ("pending", None)


@pytest.mark.parametrize("state, decider, after_or_refusal", [
    ("held", "staff:c", ("decided", "failed")),
    ("held", "staff:a", (403, "same_person_cannot_sign", [{"field": "duty", "message": "signed"}])),
    ("held", "staff:b", (403, "same_person_cannot_sign", [{"field": "duty", "message": "signed"}])),
    ("held", "staff:clerk", (403, "same_person_cannot_sign", [{"field": "duty", "message": "recorded"}])),
    ("pending", "staff:c", (409, "not_held", [])),
    ("agreed", "staff:c", (409, "not_held", [])),
    ("decided", "staff:c", (409, "not_held", [])),
    ("pending", "staff:a", (409, "not_held", [])),  # not being held is said first
])
def test_a_third_expert_decides_a_held_result(state, decider, after_or_refusal):
    def decide():
        return domain.decide_held(state, decider, "failed", {"staff:a", "staff:b"}, RECORDERS)
    if after_or_refusal[0] == "decided":
        assert decide() == after_or_refusal
    else:
        assert refusal(decide) == after_or_refusal


@pytest.mark.parametrize("state, published, code", [
    (None, False, "no_evaluation_needed"),  # a course-based result
    (None, True, "no_evaluation_needed"),
    ("pending", True, "result_already_published"),
    ("agreed", True, "result_already_published"),
    ("held", True, "result_already_published"),
])
def test_only_an_unreleased_composite_result_is_evaluated(state, published, code):
    assert refusal(lambda: domain.refuse_unless_evaluable(state, published)) == (409, code, [])


@pytest.mark.parametrize("state", ["pending", "agreed", "held", "decided"])
def test_an_unreleased_composite_result_is_evaluable_in_any_state(state):
    assert domain.refuse_unless_evaluable(state, False) is None


@pytest.mark.parametrize("state, old, new, lapse", [
    ("agreed", 60, 61, True),
    ("held", 60, 59, True),
    ("decided", 60, 0, True),
    ("pending", 60, 61, True),
    ("agreed", 60, 60, False),  # the same score: the sign-offs stand
    (None, 60, 61, False),  # a course-based result has none
])
def test_a_changed_score_voids_the_sign_offs(state, old, new, lapse):
    assert domain.sign_offs_lapse(state, old, new) is lapse


experts = st.sampled_from(["staff:a", "staff:b", "staff:c", "staff:clerk"])
decisions_ = st.sampled_from(["passed", "failed"])


@given(st.lists(st.tuples(experts, decisions_), max_size=6))
def test_any_sequence_of_sign_offs_follows_the_state_machine(attempts):
    """However the experts try, a result is settled only by two distinct experts who are not its recorder, and
    only their agreement gives it an outcome."""
    state, outcome, signed = "pending", None, {}
    for expert, decision in attempts:
        try:
            state, outcome = domain.sign_off(state, signed, expert, decision, RECORDERS)
        except (Forbidden, Conflict):
            continue
        signed[expert] = decision
    assert "staff:clerk" not in signed
    assert len(signed) <= 2
    if len(signed) < 2:
        assert (state, outcome) == ("pending", None)
    elif len(set(signed.values())) == 1:
        assert (state, outcome) == ("agreed", next(iter(signed.values())))
    else:
        assert (state, outcome) == ("held", None)


@given(st.dictionaries(st.text(min_size=1, max_size=3), decisions_, max_size=4))
def test_the_evaluation_state_does_not_depend_on_who_signed_first(decisions):
    assert domain.evaluation_state(dict(reversed(list(decisions.items())))) == domain.evaluation_state(decisions)
