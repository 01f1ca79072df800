"""docs/events.md is generated from the event models; it must match them."""

from pathlib import Path

from credence_common.contracts.docs import render
from credence_common.contracts.events import ALL_EVENTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_events_doc_matches_the_models():
    assert DOC.read_text(encoding="utf-8") == render(), "docs/events.md is stale: run `make docs`"


def test_every_event_type_and_field_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for model in ALL_EVENTS:
        assert f"### {model.event_type}" in text
        for field in model.model_fields:
            assert f"| `{field}` |" in text


def test_every_event_has_an_example_envelope_that_parses():
    from credence_common.contracts.docs import example
    from credence_common.contracts.envelope import EventEnvelope

    text = DOC.read_text(encoding="utf-8")
    for model in ALL_EVENTS:
        envelope = EventEnvelope.model_validate(example(model))
        assert envelope.type == model.event_type
        model.model_validate(envelope.data)
        assert f'"type": "{model.event_type}"' in text
