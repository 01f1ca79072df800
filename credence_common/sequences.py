"""Gap-tolerant counters for human-facing numbers (ticket numbers, certificate serials).

The UPDATE takes the row's write lock first, so concurrent workers (or processes, on PostgreSQL)
never hand out the same value; the counter commits with the record that uses it.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column


def sequence_model(Base):
    class NumberSequence(Base):
        __tablename__ = "number_sequences"

        name: Mapped[str] = mapped_column(String(60), primary_key=True)
        last_value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    return NumberSequence


def next_value(session: Session, model, name: str) -> int:
    for _ in range(3):
        value = session.execute(
            update(model).where(model.name == name).values(last_value=model.last_value + 1)
            .returning(model.last_value)
        ).scalar()
        if value is not None:
            return value
        try:
            with session.begin_nested():
                session.execute(insert(model).values(name=name, last_value=1))
            return 1
        except IntegrityError:
            continue  # another worker created the counter first; take the next value from it
    raise RuntimeError(f"could not allocate a value from sequence {name}")
