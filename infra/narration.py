"""What the ``make demo*`` scripts share: timestamped narration and the check that ``make run``
is up before they start."""

from __future__ import annotations

import time
from collections.abc import Callable

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


def run_demo(play: Callable[[], int]) -> int:
    """Runs a demo, turning the platform going away under it into a sentence, not a traceback."""
    try:
        return play()
    except httpx.TransportError:
        say("The platform stopped answering. Is it running? Start it with `make run`.")
        return 1
    except KeyboardInterrupt:
        say("Stopped. The run goes on in the platform; see it in the Temporal UI.")
        return 130
