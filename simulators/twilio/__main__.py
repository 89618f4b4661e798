"""``python -m simulators.twilio``: the Twilio simulator on the port of
CAREPATH_TWILIO_API_BASE_URL, with the account configured for the platform."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings
from simulators.serving import run_simulator
from simulators.twilio.app import TwilioState, create_app


def build_app(settings: Settings) -> FastAPI:
    state = TwilioState(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
    )
    return create_app(state)


def main() -> None:
    run_simulator(
        build_app, base_url=lambda settings: settings.twilio_api_base_url, default_port=8082
    )


if __name__ == "__main__":
    main()
