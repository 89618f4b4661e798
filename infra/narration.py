"""What the ``make demo*`` scripts share: timestamped narration and the check that ``make run``
is up before they start."""

from __future__ import annotations

import time

import httpx


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def platform_ready(http: httpx.Client, api: str) -> bool:
    """True when the API answers ready; otherwise says why and what to do."""
    try:
        ready = http.get(f"{api}/readyz")
    except httpx.HTTPError:
        say(f"Nothing answers at {api}. Start the platform first with `make run`.")
        return False
    if ready.status_code != 200:
        say(f"The platform is not ready yet: {ready.text}")
        return False
    return True
