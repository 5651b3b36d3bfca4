"""Whether the Hugging Face Hub can be asked at all, decided in milliseconds.

huggingface_hub retries a dead connection for about 20 seconds before failing; a DNS lookup of
the endpoint answers at once, so offline machines get their "how to provide it" line quickly.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to use a copy already in the local Hugging Face cache"


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no")


def hub_reachable() -> bool:
    if offline_mode():
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
