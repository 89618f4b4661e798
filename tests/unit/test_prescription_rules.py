"""The base review rules, pair by pair. The expected pairs are written out here from the
pharmacopoeia's wording, independently of how herbs.yaml groups them, so a mistake in the data
file's families shows up as a missing or unexpected finding."""

from __future__ import annotations

import itertools

import pytest

from prescriptions.rules import Finding, RuleItem, check, load_rule_book

WUTOU = ["川乌", "草乌", "附子"]
WUTOU_ANTAGONISTS = [
    "半夏", "瓜蒌", "瓜蒌皮", "瓜蒌子", "天花粉", "川贝母", "浙贝母", "平贝母", "伊贝母",
    "湖北贝母", "白蔹", "白及",
]  # fmt: skip
GANCAO_ANTAGONISTS = ["海藻", "京大戟", "红大戟", "甘遂", "芫花"]
LILU_ANTAGONISTS = [
    "人参", "西洋参", "党参", "丹参", "玄参", "南沙参", "北沙参", "苦参", "细辛", "白芍", "赤芍",
]  # fmt: skip

EIGHTEEN = (
    [(a, b) for a in WUTOU for b in WUTOU_ANTAGONISTS]
    + [("甘草", b) for b in GANCAO_ANTAGONISTS]
    + [("藜芦", b) for b in LILU_ANTAGONISTS]
)
NINETEEN = [
    ("硫黄", "芒硝"), ("硫黄", "玄明粉"),
    ("水银", "砒石"), ("水银", "砒霜"),
    ("狼毒", "密陀僧"),
    ("巴豆", "牵牛子"), ("巴豆霜", "牵牛子"),
    ("丁香", "郁金"), ("母丁香", "郁金"),
    ("芒硝", "三棱"), ("玄明粉", "三棱"),
    ("川乌", "犀角"), ("草乌", "犀角"), ("附子", "犀角"),
    ("人参", "五灵脂"),
    ("肉桂", "赤石脂"),
]  # fmt: skip


# Below every usual maximum, so that pair tests see only the pair's finding.
SMALL = 0.05


def codes(herbs: list[str], dose: float = SMALL) -> list[tuple[str, tuple[str, ...]]]:
    return [(f.code, f.herbs) for f in check([RuleItem(h, dose) for h in herbs])]


def test_the_lists_are_complete() -> None:
    assert len(EIGHTEEN) == 52
    assert len(NINETEEN) == 16
    # The rule book holds exactly these pairs: nothing missing, nothing invented.
    book = load_rule_book()
    expected = {frozenset(p) for p in EIGHTEEN + NINETEEN}
    assert set(book.pairs) == expected


@pytest.mark.parametrize(("a", "b"), EIGHTEEN, ids=[f"{a}-{b}" for a, b in EIGHTEEN])
def test_eighteen_antagonisms(a: str, b: str) -> None:
    assert codes([a, b]) == [("eighteen_antagonism", (a, b))]
    assert codes([b, a]) == [("eighteen_antagonism", (b, a))]


@pytest.mark.parametrize(("a", "b"), NINETEEN, ids=[f"{a}-{b}" for a, b in NINETEEN])
def test_nineteen_incompatibilities(a: str, b: str) -> None:
    assert codes([a, b]) == [("nineteen_incompatibility", (a, b))]


@pytest.mark.parametrize(
    ("written", "partner", "rule"),
    [
        # 乌头 under its family members and processed forms
        ("制附子", "法半夏", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        ("黑顺片", "姜半夏", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        ("制川乌", "天花粉", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        ("生草乌", "栝楼子", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        ("附片", "全瓜蒌", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        ("川乌", "瓜蒌皮", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        ("附子", "川贝", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        ("附子", "白芨", "十八反：乌头反半夏、瓜蒌、贝母、白蔹、白及"),
        # 甘草 in any preparation
        ("炙甘草", "京大戟", "十八反：甘草反海藻、大戟、甘遂、芫花"),
        ("生甘草", "醋甘遂", "十八反：甘草反海藻、大戟、甘遂、芫花"),
        # 芍药 = 白芍 / 赤芍
        ("藜芦", "炒白芍", "十八反：藜芦反诸参、细辛、芍药"),
        ("藜芦", "赤芍", "十八反：藜芦反诸参、细辛、芍药"),
        ("藜芦", "红参", "十八反：藜芦反诸参、细辛、芍药"),
        ("藜芦", "元参", "十八反：藜芦反诸参、细辛、芍药"),
        # 芒硝 as 朴硝 and as 牙硝; 肉桂 as 官桂
        ("硫黄", "芒硝", "十九畏：硫黄畏朴硝"),
        ("硫黄", "朴硝", "十九畏：硫黄畏朴硝"),
        ("牙硝", "荆三棱", "十九畏：牙硝畏三棱"),
        ("官桂", "赤石脂", "十九畏：官桂畏石脂"),
        ("肉桂", "石脂", "十九畏：官桂畏石脂"),
        ("黑丑", "巴豆霜", "十九畏：巴豆畏牵牛"),
        ("公丁香", "广郁金", "十九畏：丁香畏郁金"),
        ("生晒参", "五灵脂", "十九畏：人参畏五灵脂"),
    ],
)
def test_aliases_and_families_resolve(written: str, partner: str, rule: str) -> None:
    findings = check([RuleItem(written, SMALL), RuleItem(partner, SMALL)])
    assert [(f.rule, f.herbs) for f in findings] == [(rule, (written, partner))]


@pytest.mark.parametrize(
    ("a", "b", "herb"),
    [
        ("生甘草", "炙甘草", "甘草"),
        ("官桂", "肉桂", "肉桂"),
        ("芒硝", "朴硝", "芒硝"),
        ("法半夏", "姜半夏", "半夏"),
        ("白术", "炒白术", "白术"),
        ("延胡索", "醋元胡", "延胡索"),
        ("生地", "干地黄", "地黄"),
    ],
)
def test_the_same_herb_twice_is_duplicate(a: str, b: str, herb: str) -> None:
    [finding] = check([RuleItem(a, SMALL), RuleItem(b, SMALL)])
    assert finding.code == "duplicate_herb"
    assert finding.herbs == (a, b)
    assert herb in finding.message


@pytest.mark.parametrize(
    "herbs",
    [
        ["白芍", "赤芍"],  # both 芍药, but two herbs: a common pair, not a duplicate
        ["附子", "川乌"],  # both 乌头 family, distinct herbs
        ["地黄", "熟地黄"],
        ["干姜", "炮姜", "生姜"],
        ["人参", "白术", "茯苓", "炙甘草"],  # 四君子汤
        ["当归", "川芎", "白芍", "熟地黄"],  # 四物汤
        ["麻黄", "桂枝", "苦杏仁", "甘草"],  # 麻黄汤
    ],
)
def test_ordinary_formulas_have_no_findings(herbs: list[str]) -> None:
    assert check([RuleItem(h, SMALL) for h in herbs]) == []


def test_unknown_herbs_are_findings_not_accepted() -> None:
    [finding] = check([RuleItem("当归", 10), RuleItem("龙鳞草", 5)])
    assert finding == Finding(
        "unknown_herb", "药名核对", ("龙鳞草",), "「龙鳞草」不在饮片目录中，请核对药名"
    )


def test_doses_beyond_the_usual_range() -> None:
    findings = check([RuleItem("细辛", 6), RuleItem("附子", 15), RuleItem("当归", 30)])
    assert [(f.code, f.herbs) for f in findings] == [("dose_above_usual", ("细辛",))]
    assert "1–3g" in findings[0].message


def test_a_full_prescription_lists_every_finding_once() -> None:
    herbs = ["制附子", "法半夏", "炙甘草", "海藻", "生甘草", "芒硝", "京三棱"]
    found = codes(herbs)
    assert found == [
        ("duplicate_herb", ("炙甘草", "生甘草")),
        ("eighteen_antagonism", ("制附子", "法半夏")),
        ("eighteen_antagonism", ("炙甘草", "海藻")),
        ("eighteen_antagonism", ("海藻", "生甘草")),
        ("nineteen_incompatibility", ("芒硝", "京三棱")),
    ]
    # Pairs are checked exhaustively, yet a 40-herb prescription stays cheap.
    big = [RuleItem(h, 6) for h in itertools.islice(load_rule_book().canonical, 40)]
    assert isinstance(check(big), list)
