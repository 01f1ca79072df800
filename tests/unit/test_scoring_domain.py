from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.scoring import domain
from services.scoring.domain import evaluate, visible_status


@pytest.mark.parametrize(
    "score, pass_mark, outcome",
    [
        (60, 60, "passed"),  # at the pass mark
        (59, 60, "failed"),  # just below
        (61, 60, "passed"),  # just above
        (0, 60, "failed"),
        (100, 60, "passed"),
        (100, 100, "passed"),
        (99, 100, "failed"),
        (0, 0, "passed"),
    ],
)
def test_evaluate(score, pass_mark, outcome):
    assert evaluate(score, pass_mark) == outcome


@pytest.mark.parametrize("score", [-1, 101, 1000, -100])
def test_evaluate_refuses_score_out_of_range(score):
    with pytest.raises(ValueError, match="final_score"):
        evaluate(score, 60)


@pytest.mark.parametrize(
    "published, outcome, shown",
    [
        (False, "passed", "evaluating"),
        (False, "failed", "evaluating"),
        (False, None, "evaluating"),
        (True, None, "evaluating"),
        (True, "", "evaluating"),
        (True, "passed", "passed"),
        (True, "failed", "failed"),
    ],
)
def test_visible_status_hides_outcome_until_published(published, outcome, shown):
    assert visible_status(published, outcome) == shown


def test_the_review_window_runs_from_the_release_and_is_not_open_before_it():
    released = datetime(2026, 4, 30, 16, 0, tzinfo=UTC)
    assert domain.review_window_ends_at(released, 15) == datetime(2026, 5, 15, 16, 0, tzinfo=UTC)
    assert domain.review_window_ends_at(None, 15) is None


# --- separation of duties ---------------------------------------------------------------------------------------

def test_the_recorders_of_a_result_are_who_set_its_score_and_who_imported_its_file():
    history = [("recorded", "staff:clerk"), ("corrected", "staff:second"), ("evaluated", "staff:expert"),
               ("decided", "staff:chief"), ("published", "staff:publisher")]
    assert domain.recorders(history) == {"staff:clerk", "staff:second"}
    assert domain.recorders([], importer="staff:importer") == {"staff:importer"}
    assert domain.recorders([("evaluated", "staff:expert")], importer=None) == set()


def test_the_recorder_of_a_result_cannot_sign_it_off():
    conflict = domain.sign_off_conflict("staff:clerk", {"staff:clerk"})
    assert (conflict.code, conflict.duty) == ("same_person_cannot_sign", "recorded")
    assert "two other experts" in conflict.message
    assert domain.sign_off_conflict("staff:expert", {"staff:clerk"}) is None
    assert domain.sign_off_conflict("staff:expert", set()) is None


def test_a_third_decider_is_neither_of_the_two_signers_nor_the_recorder():
    signers, recorders = {"staff:a", "staff:b"}, {"staff:clerk"}
    for signer in sorted(signers):
        conflict = domain.decision_conflict(signer, recorders, signers)
        assert (conflict.code, conflict.duty) == ("same_person_cannot_sign", "signed")
    assert domain.decision_conflict("staff:clerk", recorders, signers).duty == "recorded"
    assert domain.decision_conflict("staff:chief", recorders, signers) is None


def test_the_recorder_of_a_result_cannot_close_its_recheck():
    assert domain.recheck_conflict("staff:clerk", {"staff:clerk", "staff:second"}).duty == "recorded"
    assert domain.recheck_conflict("staff:expert", {"staff:clerk"}) is None
