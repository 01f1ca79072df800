"""Masking of personal data. Every response and log line shows only these masked forms."""

from __future__ import annotations

import ipaddress


def mask_resident_id(resident_id_number: str) -> str:
    """``110105194912310021`` -> ``110105********0021``: the six-digit region code and the last four
    stay (as on CHSI reports); the birth date is hidden."""
    value = (resident_id_number or "").strip()
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_resident_id_public(resident_id_number: str) -> str:
    """For answers anyone may read (public checks, reports opened by code or share code, their pages and PDF):
    ``110105194912310021`` -> ``**************0021``. Only the last four stay: the region code and the last
    four of the ``110105********0021`` form plus a known birthday give back the whole number. Already masked
    input (either form) masks the same way, so stored masked values can be passed through it."""
    value = (resident_id_number or "").strip()
    if len(value) <= 8:  # too short for four to stay hidden behind the rest
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


def mask_mobile(mobile: str) -> str:
    """``13812345678`` -> ``138****5678``."""
    value = (mobile or "").strip()
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(full_name: str) -> str:
    """For public answers: ``张三丰`` -> ``张*丰``, ``李四`` -> ``李*``, ``Ann Lee`` -> ``A*****e``."""
    value = (full_name or "").strip()
    if len(value) <= 1:
        return value
    if len(value) == 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]


def mask_email(email: str) -> str:
    """``ann.lee@example.com`` -> ``a******@example.com``: enough for the owner to recognise it."""
    local, _, domain = (email or "").partition("@")
    if not domain:
        return "*" * len(local)
    return (local[:1] + "*" * max(len(local) - 1, 1)) + "@" + domain


IPV4_KEPT_PREFIX = 24
IPV6_KEPT_PREFIX = 48


def mask_ip_address(address: str) -> str:
    """A caller's address as anyone but the operators may see it: its network, IPv4 ``/24`` and IPv6 ``/48``
    (``203.0.113.77`` -> ``203.0.113.0/24``), enough to tell one place from another, not who. Anything that is
    not an address is dropped (``""``). Masking a masked value changes nothing, so the check log's addresses
    truncated after 30 days (verification's retention) show the same as they did while whole."""
    value = (address or "").strip()
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ""
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        network = ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/32")
    prefix = IPV4_KEPT_PREFIX if network.version == 4 else IPV6_KEPT_PREFIX
    if network.prefixlen < prefix:  # already coarser: keep it as it is
        return str(network)
    return str(network.supernet(new_prefix=prefix))
