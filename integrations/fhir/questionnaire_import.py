"""A FHIR R4 Questionnaire as a draft form: checked against the FHIR model first, then each item
mapped (groups become a section followed by their questions, a grid group a matrix, enableWhen a
show-if expression). Anything that cannot be carried over is named at its FHIR path and nothing
is imported."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.questionnaire import Questionnaire
from pydantic import ValidationError

from core.validation import error_path
from integrations.fhir.extensions import (
    ABNORMAL,
    ABNORMAL_AT_LEAST,
    ABNORMAL_AT_MOST,
    CARE_STEP,
    CASCADE,
    CASCADE_LABEL_SEPARATOR,
    CASCADE_SEPARATOR,
    DESCRIPTION,
    END_IF,
    ENDS_FORM,
    FORM_IDENTIFIER,
    MAX_OCCURS,
    MAX_SIZE,
    MAX_VALUE,
    MIME_TYPE,
    MIN_VALUE,
    OPTION_EXCLUSIVE,
    ORDINAL,
    OTHER,
    PRIMARY_SCORE,
    RATING_SCALE,
    SCORE,
    SECTION,
    SHOW_IF,
    SIGNATURE,
    UNIT,
    YES_NO,
    controls_of,
    extensions_of,
    one,
    own_url,
    value_of,
)
from pathways.form_definition import (
    CHOICE_TYPES,
    RATING_RANGES,
    ROW_NAME_SEPARATOR,
)

_OPERATORS = {
    v: k for k, v in {"==": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}.items()
}


class QuestionnaireRejected(ValueError):
    """The Questionnaire cannot become a form: every reason, each at its FHIR path."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


_SLUG_BAD = re.compile(r"[^a-z0-9_-]+")


def _slug(text: str, prefix: str) -> str:
    """An id here for an id there: lower case, other characters as '_', starting with a letter
    or digit (``prefix`` put before one that would not)."""
    slug = _SLUG_BAD.sub("_", text.lower()).strip("_-")
    if not slug:
        return prefix
    return (slug if slug[0].isalnum() else f"{prefix}{slug}")[:64]


@dataclass
class _Reader:
    """Reads a Questionnaire's items into questions, collecting every problem."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)
    # linkId -> (the name conditions use for its answer, question type)
    ids: dict[str, tuple[str, str]] = field(default_factory=dict)
    # linkId -> {an option as written there (code, text or number): its value here}
    option_values: dict[str, dict[str, str]] = field(default_factory=dict)

    def problem(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def question_id(self, link_id: str) -> str:
        # Expressions name questions, so an id is also an identifier: never a leading digit.
        base = _slug(link_id, "q")
        base = f"q{base}"[:60] if base[0].isdigit() else base[:60]
        candidate, n = base, 2
        taken = {q["id"] for q in self.questions}
        while candidate in taken:
            candidate, n = f"{base}_{n}", n + 1
        return candidate

    def add(self, item: Mapping[str, Any], at: str) -> None:
        link_id = str(item.get("linkId", ""))
        kind = item.get("type")
        extensions = extensions_of(item)
        controls = controls_of(extensions)
        question: dict[str, Any] = {
            "id": self.question_id(link_id),
            "text": item.get("text") or link_id,
        }
        if question["id"] != link_id:
            question["link_id"] = link_id
        for unsupported in ("answerValueSet", "initial", "readOnly", "definition"):
            if item.get(unsupported) not in (None, False, []):
                self.problem(f"{at}.{unsupported}", f"'{unsupported}' is not supported")
        children = [
            c for c in item.get("item") or [] if "help" not in controls_of(extensions_of(c))
        ]
        help_items = [c for c in item.get("item") or [] if "help" in controls_of(extensions_of(c))]
        if help_items:
            question["description"] = help_items[0].get("text")
        required = bool(item.get("required", False))
        if kind == "group" and "grid" in controls:
            self._matrix(item, question, children, at)
        elif kind == "group":
            # A group of questions: a heading, then its questions in order; a condition on the
            # group holds for each of them as well.
            question["type"] = "section"
            if one(extensions, DESCRIPTION):
                question["description"] = one(extensions, DESCRIPTION)
            condition = self._show_if(item, at)
            if condition:
                question["show_if"] = condition
            self.questions.append(question)
            self.ids[link_id] = (question["id"], "section")
            first = len(self.questions)
            for index, child in enumerate(item.get("item") or []):
                if "help" not in controls_of(extensions_of(child)):
                    self.add(child, f"{at}.item[{index}]")
            heading = bool(one(extensions, SECTION))
            for added in self.questions[first:]:
                if not heading:
                    added.setdefault("fhir_group", link_id)
                own = added.get("show_if")
                if condition:
                    added["show_if"] = f"({condition}) and ({own})" if own else condition
            return
        elif kind == "display":
            question["type"] = "section"
            if one(extensions, DESCRIPTION):
                question["description"] = one(extensions, DESCRIPTION)
        elif kind in ("choice", "open-choice"):
            self._choice(item, question, extensions, controls, at)
        elif kind == "boolean":
            question["type"] = "yes_no"
        elif kind in ("string", "text"):
            question["type"] = "text" if kind == "string" else "long_text"
            if item.get("maxLength"):
                question["max_length"] = _whole(item["maxLength"])
        elif kind in ("decimal", "integer"):
            self._number(item, question, extensions, controls)
        elif kind in ("date", "time"):
            question["type"] = kind
            if kind == "date":
                low, high = one(extensions, MIN_VALUE), one(extensions, MAX_VALUE)
                if low:
                    question["min_date"] = low
                if high:
                    question["max_date"] = high
        elif kind == "attachment":
            question["type"] = "signature" if one(extensions, SIGNATURE) else "photo"
            types = [value_of(e) for e in extensions.get(MIME_TYPE, [])]
            if types:
                question["content_types"] = types
            size = one(extensions, MAX_SIZE)
            if size is not None:
                question["max_bytes"] = _whole(size)
            if item.get("repeats") and question["type"] == "photo":
                question["max_files"] = one(extensions, MAX_OCCURS) or 5
        else:
            self.problem(f"{at}.type", f"items of type '{kind}' are not supported")
            return
        if kind not in ("display", "group"):
            question["required"] = required
        if children and kind != "group":
            self.problem(f"{at}.item", "questions nested under a question are not supported")
        for url, key in (
            (ABNORMAL_AT_LEAST, "abnormal_at_least"),
            (ABNORMAL_AT_MOST, "abnormal_at_most"),
        ):
            if one(extensions, url) is not None:
                question[key] = one(extensions, url)
        steps = [value_of(e) for e in extensions.get(CARE_STEP, [])]
        if steps:
            question["care_steps"] = steps
        if one(extensions, END_IF):
            question["end_if"] = one(extensions, END_IF)
        show_if = one(extensions, SHOW_IF) or self._show_if(item, at)
        if show_if:
            question["show_if"] = show_if
        self.questions.append(question)
        self.ids[link_id] = (question["id"], question["type"])

    def _choice(
        self,
        item: Mapping[str, Any],
        question: dict[str, Any],
        extensions: Mapping[str, list[dict[str, Any]]],
        controls: set[str],
        at: str,
    ) -> None:
        options = item.get("answerOption") or []
        if one(extensions, CASCADE):
            question["type"] = "cascade"
            question["options"] = self._cascade(options, at)
            return
        if one(extensions, YES_NO):
            question["type"] = "yes_no"
            question["options"] = self._options(item, options, at)
            return
        question["type"] = (
            "multiple_choice"
            if item.get("repeats")
            else "dropdown"
            if "drop-down" in controls
            else "single_choice"
        )
        question["options"] = self._options(item, options, at)
        if item.get("type") == "open-choice" and not any(
            o.get("other") for o in question["options"]
        ):
            values = {o["value"] for o in question["options"]}
            question["options"].append(
                {
                    "value": "other" if "other" not in values else "other_answer",
                    "label": "其他",
                    "other": True,
                    "fhir_answer": "open",
                }
            )

    def _options(
        self, item: Mapping[str, Any], options: Sequence[Mapping[str, Any]], at: str
    ) -> list[dict[str, Any]]:
        """The item's options, each with a value of its own: a text written in Chinese has no
        usable slug, and two codes can share one, so such an option is numbered instead."""
        found: list[dict[str, Any]] = []
        written: dict[str, str] = {}
        for n, option in enumerate(options):
            result, as_written = self._option(option, f"{at}.answerOption[{n}]")
            taken = {o["value"] for o in found}
            if result["value"] in taken or result["value"] == "o":
                result["value"] = next(
                    f"o{k}" for k in range(n + 1, n + 2 + len(options)) if f"o{k}" not in taken
                )
                if result.get("fhir_answer", "coding") == "coding":
                    result["fhir_code"] = as_written
            written[as_written] = result["value"]
            found.append(result)
        self.option_values[str(item.get("linkId", ""))] = written
        return found

    def _option(self, option: Mapping[str, Any], at: str) -> tuple[dict[str, Any], str]:
        extensions = extensions_of(option)
        coding = option.get("valueCoding")
        kind = "coding"
        if coding is not None:
            code, label = str(coding.get("code") or ""), coding.get("display") or coding.get("code")
        elif "valueString" in option:
            code, label = str(option["valueString"]), option["valueString"]
            kind = "string"
        elif "valueInteger" in option:
            code, label = str(option["valueInteger"]), str(option["valueInteger"])
            kind = "integer"
        else:
            self.problem(at, "only coded, text and whole-number answer options are supported")
            code, label = "x", "x"
        result: dict[str, Any] = {"value": _slug(code, "o"), "label": str(label)}
        if coding is None:
            result["fhir_answer"] = kind
        if coding is not None and result["value"] != code:
            result["fhir_code"] = code
        if coding is not None and coding.get("system"):
            result["fhir_system"] = coding["system"]
        score = one(extensions, ORDINAL)
        if score is not None:
            result["score"] = score
        for url, key in (
            (OPTION_EXCLUSIVE, "exclusive"),
            (ABNORMAL, "abnormal"),
            (ENDS_FORM, "ends_form"),
            (OTHER, "other"),
        ):
            if one(extensions, url):
                result[key] = True
        return result, code

    def _cascade(self, options: Sequence[Mapping[str, Any]], at: str) -> list[dict[str, Any]]:
        top: list[dict[str, Any]] = []
        for n, option in enumerate(options):
            coding = option.get("valueCoding") or {}
            values = str(coding.get("code", "")).split(CASCADE_SEPARATOR)
            labels = str(coding.get("display", "")).split(CASCADE_LABEL_SEPARATOR)
            if len(values) != len(labels) or not all(values):
                self.problem(
                    f"{at}.answerOption[{n}]", "a cascade option is a path of codes and labels"
                )
                continue
            level = top
            for depth, (value, label) in enumerate(zip(values, labels, strict=True)):
                node = next((o for o in level if o["value"] == value), None)
                if node is None:
                    node = {"value": value, "label": label}
                    level.append(node)
                if depth == len(values) - 1 and one(extensions_of(option), ABNORMAL):
                    node["abnormal"] = True
                level = node.setdefault("children", [])
        _prune(top)
        return top

    def _number(
        self,
        item: Mapping[str, Any],
        question: dict[str, Any],
        extensions: Mapping[str, list[dict[str, Any]]],
        controls: set[str],
    ) -> None:
        scale = one(extensions, RATING_SCALE)
        low, high = one(extensions, MIN_VALUE), one(extensions, MAX_VALUE)
        if scale is None and item.get("type") == "integer" and "slider" in controls:
            # A 0-10 slider is the pain slider (an NPS is asked as buttons, and says so).
            ranges = sorted(RATING_RANGES.items(), key=lambda entry: entry[0] != "pain")
            scale = next((name for name, span in ranges if span == (low, high)), None)
        if scale is not None:
            question["type"], question["scale"] = "rating", scale
            return
        question["type"] = "number"
        unit = one(extensions, UNIT)
        if isinstance(unit, Mapping) and (unit.get("display") or unit.get("code")):
            question["unit"] = str(unit.get("display") or unit.get("code"))[:20]
            if unit.get("code"):
                question["fhir_unit_code"] = str(unit["code"])
            if unit.get("system"):
                question["fhir_unit_system"] = str(unit["system"])
        if low is not None:
            question["minimum"] = low
        if high is not None:
            question["maximum"] = high

    def _matrix(
        self,
        item: Mapping[str, Any],
        question: dict[str, Any],
        rows: Sequence[Mapping[str, Any]],
        at: str,
    ) -> None:
        question["type"] = "matrix"
        prefix = f"{item.get('linkId')}."
        scale = (rows[0].get("answerOption") or []) if rows else []
        question["options"] = self._options(rows[0] if rows else {}, scale, f"{at}.item[0]")
        question["rows"] = []
        for n, row in enumerate(rows):
            link_id = str(row.get("linkId", ""))
            if row.get("type") != "choice" or (row.get("answerOption") or []) != scale:
                self.problem(
                    f"{at}.item[{n}]", "every row of a grid is a choice on the same options"
                )
            row_id = _slug(link_id.removeprefix(prefix), "r")
            question["rows"].append({"id": row_id, "text": row.get("text") or row_id})
            self.ids[link_id] = (f"{question['id']}{ROW_NAME_SEPARATOR}{row_id}", "single_choice")

    def _show_if(self, item: Mapping[str, Any], at: str) -> str | None:
        conditions = item.get("enableWhen") or []
        if not conditions:
            return None
        parts: list[str] = []
        for n, condition in enumerate(conditions):
            here = f"{at}.enableWhen[{n}]"
            target = self.ids.get(str(condition.get("question")))
            if target is None:
                self.problem(f"{here}.question", "refers to no earlier item")
                continue
            name, kind = target
            operator = condition.get("operator")
            answer_key = next((k for k in condition if k.startswith("answer")), None)
            answer = condition.get(answer_key) if answer_key else None
            if operator == "exists":
                parts.append(f"count({name}) {'>' if answer else '=='} 0")
            elif answer_key == "answerBoolean" and operator in ("=", "!="):
                value = "yes" if answer else "no"
                parts.append(f"{name} {_OPERATORS[operator]} '{value}'")
            elif operator in ("=", "!=") and (
                answer_key == "answerCoding"
                or (kind in CHOICE_TYPES and answer_key in ("answerString", "answerInteger"))
            ):
                # An option, as a coding or as the text or number it was written as.
                given = (answer or {}).get("code", "") if answer_key == "answerCoding" else answer
                values = self.option_values.get(str(condition.get("question")), {})
                code = values.get(str(given)) or _slug(str(given), "o")
                if kind == "multiple_choice":
                    parts.append(f"{'not ' if operator == '!=' else ''}'{code}' in {name}")
                else:
                    parts.append(f"{name} {_OPERATORS[operator]} '{code}'")
            elif answer_key in ("answerDecimal", "answerInteger") and operator in _OPERATORS:
                parts.append(f"{name} {_OPERATORS[operator]} {answer}")
            elif (
                answer_key in ("answerString", "answerDate", "answerTime")
                and operator in _OPERATORS
            ):
                parts.append(f"{name} {_OPERATORS[operator]} {str(answer)!r}")
            else:
                self.problem(
                    here,
                    f"a condition with {answer_key or 'no answer'} and '{operator}' "
                    "is not supported",
                )
        joiner = " or " if item.get("enableBehavior") == "any" else " and "
        return joiner.join(parts) if parts else None


def _whole(value: Any) -> Any:
    """A whole number from FHIR's integer or decimal; anything else as it came, for the form's
    own check to name."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else value


def _prune(options: list[dict[str, Any]]) -> None:
    for option in options:
        if option.get("children"):
            _prune(option["children"])
        else:
            option.pop("children", None)


def from_questionnaire(resource: Mapping[str, Any], *, base_url: str) -> dict[str, Any]:
    """A Questionnaire (JSON) as a form definition to save as a draft. Raises
    QuestionnaireRejected naming every unsupported or invalid part; the definition itself is
    then checked as any designer's draft is. ``base_url``: where this platform's own
    Questionnaires live (a URL of its own is not kept as the form's source)."""
    if resource.get("resourceType") != "Questionnaire":
        raise QuestionnaireRejected([("resourceType", "must be 'Questionnaire'")])
    try:
        checked = Questionnaire.model_validate(resource)
    except ValidationError as exc:
        raise QuestionnaireRejected(
            [(error_path(e["loc"]), e["msg"]) for e in exc.errors(include_url=False)]
        ) from exc
    data = checked.model_dump(mode="json", exclude_none=True)
    reader = _Reader()
    for index, item in enumerate(data.get("item") or []):
        reader.add(item, f"item[{index}]")
    if not reader.questions:
        reader.problem("item", "a Questionnaire without items is not a form")
    if reader.problems:
        raise QuestionnaireRejected(reader.problems)
    extensions = extensions_of(data)
    identifier = next(
        (
            i.get("value")
            for i in data.get("identifier") or []
            if i.get("system") == FORM_IDENTIFIER
        ),
        None,
    )
    form_id = identifier or _slug(str(data.get("id") or data.get("name") or "imported"), "f")
    definition: dict[str, Any] = {
        "id": form_id,
        "title": data.get("title") or data.get("name") or form_id,
        "questions": reader.questions,
    }
    if data.get("description"):
        definition["intro"] = data["description"]
    if data.get("url") and data["url"] != own_url(base_url, form_id):
        definition["fhir_url"] = data["url"]
    scores: dict[str, str] = {}
    for score in extensions.get(SCORE, []):
        parts = {e.get("url"): value_of(e) for e in score.get("extension", [])}
        if parts.get("name") and parts.get("formula"):
            scores[str(parts["name"])] = str(parts["formula"])
    if scores:
        definition["scores"] = scores
    if one(extensions, PRIMARY_SCORE):
        definition["primary_score"] = one(extensions, PRIMARY_SCORE)
    return definition
