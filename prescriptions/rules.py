"""Base review rules for herbal prescriptions (RX-2): 十八反, 十九畏, 重味, unknown herbs and
doses beyond the usual range, applied before any pharmacist sees the prescription.

Pure and fast: the rule book is loaded once from prescriptions/data/herbs.yaml (sources cited
there) into lookup tables; checking a prescription is a pass over its items and their pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

DATA_FILE = Path(__file__).resolve().parent / "data" / "herbs.yaml"

# Processing words written before a herb's name (炒白术, 蜜炙甘草, 醋延胡索, 煅龙骨 …), longest
# first so that 蜜炙 is stripped before 蜜.
PROCESSING_PREFIXES = sorted(
    [
        "生",
        "制",
        "炙",
        "炒",
        "焦",
        "煅",
        "醋",
        "酒",
        "盐",
        "蜜",
        "姜",
        "麸炒",
        "土炒",
        "蜜炙",
        "酒炙",
        "醋炙",
        "盐炙",
        "姜炙",
        "炮",
        "净",
        "炒焦",
        "烫",
        "鲜",
        "酒制",
        "醋制",
        "盐制",
    ],
    key=len,
    reverse=True,
)
# ... and after it (地榆炭, 山楂炭, 三七粉).
PROCESSING_SUFFIXES = ("炭", "粉", "片")

FindingCode = Literal[
    "eighteen_antagonism",
    "nineteen_incompatibility",
    "duplicate_herb",
    "unknown_herb",
    "dose_above_usual",
]


@dataclass(frozen=True)
class Finding:
    code: FindingCode
    rule: str
    herbs: tuple[str, ...]  # as written on the prescription
    message: str


@dataclass(frozen=True)
class RuleItem:
    herb: str
    dose_g: float


@dataclass(frozen=True)
class _PairRule:
    code: FindingCode
    rule: str


@dataclass
class RuleBook:
    canonical: dict[str, str] = field(default_factory=dict)  # any name -> pharmacopoeia name
    pairs: dict[frozenset[str], _PairRule] = field(default_factory=dict)
    dose_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def resolve(self, written: str) -> str | None:
        """The herb a written name means, or None if it is not in the dictionary."""
        name = written.strip().replace(" ", "")
        if name in self.canonical:
            return self.canonical[name]
        for prefix in PROCESSING_PREFIXES:
            if name.startswith(prefix) and name[len(prefix) :]:
                found = self.resolve(name[len(prefix) :])
                if found is not None:
                    return found
        for suffix in PROCESSING_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in self.canonical:
                return self.canonical[name[: -len(suffix)]]
        return None


def _members(name: str, families: dict[str, list[str]], herbs: dict[str, str]) -> list[str]:
    if name in families:
        return list(families[name])
    if name in herbs:
        return [herbs[name]]
    raise ValueError(f"rule names '{name}', which is neither a family nor a herb")


def _pair_rules(
    entries: Iterable[dict[str, object]],
    code: FindingCode,
    families: dict[str, list[str]],
    canonical: dict[str, str],
) -> dict[frozenset[str], _PairRule]:
    pairs: dict[frozenset[str], _PairRule] = {}
    for entry in entries:
        a_names = entry["a"]
        b_names = entry["b"]
        assert isinstance(a_names, list)
        assert isinstance(b_names, list)
        a = [m for n in a_names for m in _members(str(n), families, canonical)]
        b = [m for n in b_names for m in _members(str(n), families, canonical)]
        for x, y in itertools.product(a, b):
            pairs[frozenset((x, y))] = _PairRule(code, str(entry["rule"]))
    return pairs


@lru_cache(maxsize=1)
def load_rule_book(path: Path = DATA_FILE) -> RuleBook:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    canonical: dict[str, str] = {}
    for herb, aliases in data["herbs"].items():
        for name in [herb, *(aliases or [])]:
            if name in canonical and canonical[name] != herb:
                raise ValueError(f"'{name}' is listed for both {canonical[name]} and {herb}")
            canonical[name] = herb
    families = {k: list(v) for k, v in data["families"].items()}
    for family, members in families.items():
        unknown = [m for m in members if m not in data["herbs"]]
        if unknown:
            raise ValueError(f"family {family} lists unknown herbs: {', '.join(unknown)}")
    book = RuleBook(canonical=canonical)
    book.pairs.update(
        _pair_rules(data["eighteen_antagonisms"], "eighteen_antagonism", families, canonical)
    )
    book.pairs.update(
        _pair_rules(
            data["nineteen_incompatibilities"], "nineteen_incompatibility", families, canonical
        )
    )
    book.dose_ranges = {
        herb: (float(low), float(high)) for herb, (low, high) in data["dose_ranges"].items()
    }
    return book


def check(items: Sequence[RuleItem], book: RuleBook | None = None) -> list[Finding]:
    """Every finding for one prescription, in a stable order: unknown herbs, duplicates,
    十八反, 十九畏, doses."""
    book = book or load_rule_book()
    resolved = [(item, book.resolve(item.herb)) for item in items]
    findings: list[Finding] = []
    for item, herb in resolved:
        if herb is None:
            findings.append(
                Finding(
                    "unknown_herb",
                    "药名核对",
                    (item.herb,),
                    f"「{item.herb}」不在饮片目录中，请核对药名",
                )
            )
    for (a, ha), (b, hb) in itertools.combinations(resolved, 2):
        if ha is None or hb is None:
            continue
        if ha == hb:
            findings.append(
                Finding(
                    "duplicate_herb",
                    "重味",
                    (a.herb, b.herb),
                    f"重味：「{a.herb}」与「{b.herb}」同为{ha}",
                )
            )
            continue
        rule = book.pairs.get(frozenset((ha, hb)))
        if rule is not None:
            findings.append(
                Finding(
                    rule.code, rule.rule, (a.herb, b.herb), f"{rule.rule}（{a.herb}、{b.herb}）"
                )
            )
    for item, herb in resolved:
        limits = book.dose_ranges.get(herb or "")
        if limits is not None and item.dose_g > limits[1]:
            low, high = limits
            findings.append(
                Finding(
                    "dose_above_usual",
                    "超常用量",
                    (item.herb,),
                    f"「{item.herb}」{item.dose_g:g}g 超过药典常用量 {low:g}–{high:g}g",
                )
            )
    order = {
        "unknown_herb": 0,
        "duplicate_herb": 1,
        "eighteen_antagonism": 2,
        "nineteen_incompatibility": 3,
        "dose_above_usual": 4,
    }
    return sorted(findings, key=lambda f: order[f.code])
