"""The data-use authorisation (数据使用授权协议) a patient accepts before their exam account is
bound (US-K1): versioned, so the version each patient accepted is on record."""

from __future__ import annotations

CONSENT_VERSION = "PX-2026-1"
CONSENT_TEXT = (
    "本人同意医院健康管理平台向体检机构查询并绑定本人的体检账号，"
    "并同意体检机构将本人的体检预约、体检项目结果和体检报告传送至健康管理平台，"
    "仅用于本人的健康管理、随访和风险评估；未经本人同意不向第三方提供。"
    "本人可随时申请解除绑定，解除后平台不再接收新的体检数据。"
)
