"""The standard item catalogue (exams/catalogue.yaml) and how a vendor's item is matched to it:
by the mapping staff made (or made automatically), else by its exact name or a known alias.
An item that matches nothing is held for staff to map (US-H3, code 501)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

_HERE = Path(__file__).resolve().parent


class StandardItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str = Field(min_length=1, max_length=100)
    category: str = Field(min_length=1, max_length=32)
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    items: dict[str, StandardItem]
    _by_name: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item in self.items.values():
            for name in (item.name, *item.aliases):
                self._by_name[_normal(name)] = item.code

    def by_name(self, name: str) -> StandardItem | None:
        code = self._by_name.get(_normal(name))
        return self.items[code] if code else None


def _normal(name: str) -> str:
    # Vendors differ in full-width brackets and spaces, not in words.
    return name.replace("（", "(").replace("）", ")").replace(" ", "").lower()


@cache
def catalogue() -> Catalogue:
    data = yaml.safe_load((_HERE / "catalogue.yaml").read_text(encoding="utf-8"))
    items = [StandardItem.model_validate(raw) for raw in data["items"]]
    return Catalogue({item.code: item for item in items})


def match_item(
    vendor_code: str, vendor_name: str, mappings: Mapping[str, str], known: Catalogue
) -> StandardItem | None:
    """The standard item a vendor's item is: mapped by staff, else by name; None: hold it."""
    mapped = mappings.get(vendor_code)
    if mapped is not None:
        return known.items.get(mapped)
    return known.by_name(vendor_name)


def judged_abnormal(item: StandardItem, value: str, flag: str | None) -> bool:
    """The vendor's flag when it gives one; else the catalogue's reference range for a number."""
    if flag is not None:
        return flag != "N"
    try:
        number = float(value)
    except ValueError:
        return False
    return (item.low is not None and number < item.low) or (
        item.high is not None and number > item.high
    )
