from datetime import UTC, datetime, timedelta, timezone

import pytest

from credence_common.persistence.types import UTCDateTime


def test_naive_values_from_sqlite_come_back_as_utc():
    column = UTCDateTime()
    value = column.process_result_value(datetime(2026, 11, 23, 8, 0), dialect=None)
    assert value == datetime(2026, 11, 23, 8, 0, tzinfo=UTC) and value.tzinfo is UTC


def test_aware_values_are_stored_in_utc():
    beijing = timezone(timedelta(hours=8))
    stored = UTCDateTime().process_bind_param(datetime(2026, 11, 23, 16, 0, tzinfo=beijing), dialect=None)
    assert stored == datetime(2026, 11, 23, 8, 0, tzinfo=UTC) and stored.utcoffset() == timedelta(0)


def test_naive_values_are_refused_on_write():
    with pytest.raises(ValueError):
        UTCDateTime().process_bind_param(datetime(2026, 11, 23), dialect=None)
