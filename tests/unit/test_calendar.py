"""credence_common/calendar.py is the one owner of the authority's Beijing zone and of the public-holiday list;
each working-day duration has one default, in the domain module of the service that owns the rule (issue #21
item 1). These tests fail when a second zone, a second holiday list or a second copy of a default appears."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from credence_common import calendar
from services.certificates import domain as certificates_domain
from services.certificates.usecases import CertificateRules
from services.payments import domain as payments_domain
from services.payments.adapters.configuration import payment_rules
from services.payments.domain import providers
from services.payments.usecases import PaymentRules

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("services", "credence_common", "gateway", "credence_cli", "verifier", "deploy", "bench")
CALENDAR = ROOT / "credence_common" / "calendar.py"
NATIONAL_DAY = "2026-10-01,2026-10-02,2026-10-05,2026-10-06,2026-10-07"


def sources(suffixes=(".py",)):
    for folder in SOURCE_FOLDERS:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in suffixes and "migrations" not in path.parts and path != CALENDAR:
                yield path


def config_default(service: str, name: str) -> int:
    text = (ROOT / "services" / service / "config.yml").read_text(encoding="utf-8")
    found = re.search(rf"^{name}:\s*\$\{{{name}:(\d+)\}}", text, re.MULTILINE)
    assert found, f"services/{service}/config.yml does not read {name}"
    return int(found.group(1))


# --- the zone --------------------------------------------------------------------------------------------

def test_a_working_day_starts_at_midnight_in_beijing():
    assert str(calendar.AUTHORITY_ZONE) == "Asia/Shanghai"
    assert calendar.business_day(datetime(2026, 11, 23, 15, 59, tzinfo=UTC)) == date(2026, 11, 23)
    assert calendar.business_day(datetime(2026, 11, 23, 16, 0, tzinfo=UTC)) == date(2026, 11, 24)


def test_payments_providers_use_the_authoritys_zone():
    assert providers.PROVIDER_ZONE is calendar.AUTHORITY_ZONE


def test_no_other_zone_is_defined_outside_the_calendar():
    """No ZoneInfo, no "Asia/Shanghai", no fixed +08:00 offset anywhere else in the code."""
    copies = [str(path.relative_to(ROOT)) for path in sources()
              if re.search(r"ZoneInfo\(|Asia/Shanghai|timedelta\(hours=8\)", path.read_text(encoding="utf-8"))]
    assert copies == []


# --- the holiday list ------------------------------------------------------------------------------------

def test_no_other_holiday_setting_is_read_outside_the_calendar():
    """Services read holidays through calendar.configured_holidays, never by a setting name of their own."""
    copies = [str(path.relative_to(ROOT)) for path in sources()
              if re.search(r"""["'][A-Z_]*HOLIDAYS["']""", path.read_text(encoding="utf-8"))]
    assert copies == []


@pytest.mark.parametrize("service", ["payments", "certificates"])
def test_every_service_counting_working_days_reads_the_one_holiday_list(service):
    text = (ROOT / "services" / service / "config.yml").read_text(encoding="utf-8")
    names = set(re.findall(r"^([A-Z_]*HOLIDAYS):", text, re.MULTILINE))
    assert names == {calendar.HOLIDAYS_SETTING, calendar.DEPRECATED_HOLIDAY_SETTINGS[service]}


def test_only_payments_and_certificates_count_working_days():
    """A new service counting working days must read PUBLIC_HOLIDAYS too (and join the test above)."""
    counting = {path.parent.name for path in (ROOT / "services").glob("*/config.yml")
                if "WORKING_DAYS" in path.read_text(encoding="utf-8")}
    assert counting == set(calendar.DEPRECATED_HOLIDAY_SETTINGS)


def test_public_holidays_is_read_by_every_service_the_same_way():
    config = {"PUBLIC_HOLIDAYS": NATIONAL_DAY}
    expected = calendar.parse_holidays(NATIONAL_DAY)
    assert payment_rules(config).holidays == expected
    assert calendar.configured_holidays(config, "certificates") == expected
    assert calendar.add_working_days(date(2026, 9, 30), 3, expected) == date(2026, 10, 12)


def test_the_deprecated_holiday_names_still_work():
    """PAYMENT_HOLIDAYS and CERTIFICATE_HOLIDAYS are read while PUBLIC_HOLIDAYS is empty, and lose to it."""
    expected = calendar.parse_holidays(NATIONAL_DAY)
    assert payment_rules({"PAYMENT_HOLIDAYS": NATIONAL_DAY}).holidays == expected
    assert payment_rules({"PUBLIC_HOLIDAYS": "", "PAYMENT_HOLIDAYS": NATIONAL_DAY}).holidays == expected
    assert calendar.configured_holidays({"CERTIFICATE_HOLIDAYS": NATIONAL_DAY}, "certificates") == expected
    assert calendar.configured_holidays(
        {"PUBLIC_HOLIDAYS": "2026-12-25", "CERTIFICATE_HOLIDAYS": NATIONAL_DAY}, "certificates") == (
        date(2026, 12, 25),)
    assert payment_rules({}).holidays == ()


def test_a_malformed_holiday_stops_the_service():
    with pytest.raises(ValueError):
        payment_rules({"PUBLIC_HOLIDAYS": "2026-13-01"})


# --- the durations ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("service", "name", "default"), [
    ("payments", "REFUND_PROMISE_WORKING_DAYS", payments_domain.REFUND_PROMISE_WORKING_DAYS),
    ("certificates", "REPORT_DELAY_WORKING_DAYS", certificates_domain.REPORT_DELAY_WORKING_DAYS),
    ("certificates", "SHIPPING_PROMISE_WORKING_DAYS", certificates_domain.SHIPPING_PROMISE_WORKING_DAYS),
    ("certificates", "REVOCATION_REVIEW_DAYS", certificates_domain.REVOCATION_REVIEW_DAYS),
])
def test_the_config_file_default_is_the_domain_default(service, name, default):
    assert config_default(service, name) == default


def test_the_rules_default_to_the_domain_defaults():
    assert PaymentRules().refund_promise_working_days == payments_domain.REFUND_PROMISE_WORKING_DAYS
    assert payment_rules({}).refund_promise_working_days == payments_domain.REFUND_PROMISE_WORKING_DAYS
    rules = CertificateRules()
    assert rules.report_delay_working_days == certificates_domain.REPORT_DELAY_WORKING_DAYS
    assert rules.shipping_promise_working_days == certificates_domain.SHIPPING_PROMISE_WORKING_DAYS
    assert rules.revocation_review_days == certificates_domain.REVOCATION_REVIEW_DAYS


def test_no_duration_is_spelled_as_a_bare_number_of_working_days():
    """Descriptions and docs name the setting (REFUND_PROMISE_WORKING_DAYS...), not "3 working days"."""
    texts = list(sources((".py", ".yml", ".yaml", ".md"))) + [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    copies = [str(path.relative_to(ROOT)) for path in texts
              if re.search(r"\b\d+[- ]working[- ]days?\b", path.read_text(encoding="utf-8"))]
    assert copies == []
