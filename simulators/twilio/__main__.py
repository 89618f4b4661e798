"""``python -m simulators.twilio``: the Twilio simulator on the port of
CAREPATH_TWILIO_API_BASE_URL, with the account configured for the platform."""

from __future__ import annotations

from urllib.parse import urlparse

import uvicorn

from core.logs import configure_logging
from core.settings import get_settings
from simulators.twilio.app import TwilioState, create_app


def main() -> None:
    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    url = urlparse(settings.twilio_api_base_url)
    state = TwilioState(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
    )
    uvicorn.run(
        create_app(state),
        host=url.hostname or "127.0.0.1",
        port=url.port or 8082,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
