"""The informed consent (知情同意书) a patient accepts before ordering a home-nursing visit."""

from __future__ import annotations

CONSENT_VERSION = "NUR-2026-1"
CONSENT_TEXT = (
    "本人自愿申请医院上门护理服务，已了解所选项目的内容、费用和可能的风险（如穿刺出血、感染、"
    "导管脱出等），同意由具备资质的护士上门操作，并如实提供病情和身份信息；服务过程中护士有权"
    "在存在安全风险时中止服务。服务完成后本人将签名确认。护士出发后取消订单将扣除上门费，"
    "护士到达后如需取消请联系护士站。"
)
