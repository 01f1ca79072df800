"""What identity's two Tencent Cloud adapters (FaceID, SMS) share about the vendor's SDK."""

from __future__ import annotations

import logging
import os

# The SDK logs every request and answer at DEBUG, bodies included (names, ID numbers, mobiles, texted codes):
# never, whatever LOG_LEVEL says.
logging.getLogger("tencentcloud_sdk_common").setLevel(logging.WARNING)


def ca_bundle() -> str | None:
    """The CA bundle requests would use (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), or None for certifi's. The SDK
    hands requests certifi's bundle explicitly, which makes requests ignore those variables: we pass them on, so a
    private CA (a TLS-inspecting proxy, the test CA of an emulator served over https) is trusted as it would be by
    every other client of this process."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
