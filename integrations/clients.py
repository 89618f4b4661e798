"""The outside-system clients built from the settings, in one place for the API process
(api.container) and the worker process (workers.factory). Each opens its own HTTP connection
pool; whoever builds one closes it."""

from __future__ import annotations

from core.dev_keys import wechatpay_keys
from core.settings import Settings
from integrations.enterprise import EnterpriseClient
from integrations.exam import ExamClient
from integrations.his import HisClient
from integrations.his_charging import HisChargingClient
from integrations.identity import IdentityClient
from integrations.insurance import InsuranceClient
from integrations.outbox import OutboxChannel
from integrations.twilio_sms import TwilioSmsChannel
from integrations.wechat import WeChatTemplateChannel
from integrations.wechatpay import NoticeVerifier, WeChatPayClient, load_public_key
from messaging.channel import MessageChannel


def his_client(settings: Settings) -> HisClient:
    return HisClient.create(
        settings.his_base_url, settings.his_api_key.get_secret_value(), settings.his_timeout_seconds
    )


def his_charging_client(settings: Settings) -> HisChargingClient:
    return HisChargingClient.create(
        settings.his_base_url, settings.his_api_key.get_secret_value(), settings.his_timeout_seconds
    )


def enterprise_client(settings: Settings) -> EnterpriseClient:
    return EnterpriseClient.create(
        settings.enterprise_base_urls, settings.enterprise_timeout_seconds
    )


def exam_client(settings: Settings) -> ExamClient:
    return ExamClient.create(
        settings.exam_base_url,
        settings.exam_api_key.get_secret_value(),
        settings.exam_timeout_seconds,
    )


def identity_client(settings: Settings) -> IdentityClient:
    return IdentityClient.create(
        settings.identity_base_url,
        settings.identity_api_key.get_secret_value(),
        settings.identity_timeout_seconds,
    )


def insurance_client(settings: Settings) -> InsuranceClient:
    return InsuranceClient.create(
        settings.insurance_base_url,
        settings.insurance_app_id,
        settings.insurance_app_secret.get_secret_value(),
        settings.insurance_timeout_seconds,
    )


def wechatpay_client(settings: Settings) -> WeChatPayClient:
    private_key, platform_key = wechatpay_keys(settings)
    return WeChatPayClient.create(
        base_url=settings.wechatpay_api_base_url,
        mchid=settings.wechatpay_mchid,
        appid=settings.wechatpay_appid,
        serial_no=settings.wechatpay_serial_no,
        private_key=private_key,
        platform_public_key=platform_key,
        apiv3_key=settings.wechatpay_apiv3_key.get_secret_value(),
        timeout_seconds=settings.wechatpay_timeout_seconds,
    )


def wechatpay_notice_verifier(settings: Settings) -> NoticeVerifier:
    """Checks and decrypts the payment provider's notifications (the same verifier
    ``wechatpay_client`` builds into the client)."""
    _, platform_key = wechatpay_keys(settings)
    return NoticeVerifier(
        load_public_key(platform_key), settings.wechatpay_apiv3_key.get_secret_value().encode()
    )


def message_channels(settings: Settings) -> dict[str, MessageChannel]:
    """The enabled channels. Call from inside the event loop (the SDK clients open sessions)."""
    channels: dict[str, MessageChannel] = {}
    for name in settings.enabled_channels:
        if name == "outbox":
            channels[name] = OutboxChannel()
        elif name == "sms":
            channels[name] = TwilioSmsChannel(
                account_sid=settings.twilio_account_sid,
                auth_token=settings.twilio_auth_token.get_secret_value(),
                from_number=settings.twilio_from_number,
                api_base_url=settings.twilio_api_base_url,
                status_callback_url=settings.twilio_status_callback_url,
                timeout_seconds=settings.channel_timeout_seconds,
            )
        elif name == "wechat":
            channels[name] = WeChatTemplateChannel.create(
                base_url=settings.wechat_api_base_url,
                appid=settings.wechat_appid,
                secret=settings.wechat_secret.get_secret_value(),
                template_ids=settings.wechat_template_ids,
                timeout_seconds=settings.channel_timeout_seconds,
            )
    return channels
