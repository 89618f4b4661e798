"""The return messages of the physical-exam interfaces, exactly as the tender's tables give them
(seed 003, US-K1..US-H5): a number, a level and a text with its variables filled in.

The tender's US-H4 use case names 602 in one place and 601 in its table; 601 is used here, as
the table and the interface list say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["成功", "提示", "错误"]

SUCCESS = "0"

# code: (level, text with {placeholders})
MESSAGES: dict[str, tuple[Level, str]] = {
    SUCCESS: ("成功", "成功。"),
    "103": ("提示", "{params}，查无账号"),
    "104": ("错误", "绑定失败！{reason}"),
    "201": ("错误", "请输入{start}至{end}的任意日期。"),
    "202": ("错误", "体检预约失败。{reason}"),
    "301": ("提示", "查无记录。{account_no}"),
    "401": ("错误", "客户信息不符。{params}"),
    "402": ("错误", "保存失败。{reason}"),
    "403": ("错误", "消息生成失败。{reason}"),
    "405": ("错误", "消息发送失败。{reason}"),
    "501": ("错误", "无法匹配项目。{items}"),
    "502": ("错误", "保存失败。{reason}"),
    "601": ("错误", "保存失败。{reason}"),
    "701": ("错误", "保存失败。"),
}

# Which interface answers with which codes (besides success): what the API documents.
INTERFACE_CODES: dict[str, tuple[str, ...]] = {
    "US-K1": ("103", "104"),
    "US-K2": ("201", "202"),
    "US-H1": ("301",),
    "US-H2": ("301", "401", "402", "403", "405"),
    "US-H3": ("301", "401", "501", "502"),
    "US-H4": ("301", "401", "601"),
    "US-H5": ("701",),
}


@dataclass(frozen=True)
class Reply:
    code: str
    level: Level
    message: str


def reply(code: str, **variables: object) -> Reply:
    """The message for ``code`` with its variables; a missing variable is left out, never a
    KeyError (a message is always produced)."""
    level, text = MESSAGES[code]
    filled = text.format_map(_Blank({k: str(v) for k, v in variables.items()}))
    return Reply(code=code, level=level, message=filled)


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def documented(interface: str) -> str:
    """The interface's codes as a Markdown list, for the OpenAPI description."""
    lines = [
        f"- `{code}` {MESSAGES[code][0]}：{MESSAGES[code][1]}"
        for code in INTERFACE_CODES[interface]
    ]
    return "\n".join(lines)
