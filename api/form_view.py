"""What the form page needs beyond the form itself: question numbers, the error text at each
answer key, the levels of a cascade as select lists, and the logic the page's script runs to
show, hide and end the form as the patient answers.

The script only mirrors check_answers for the patient's convenience; the server decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pathways.answers import (
    EARLIEST_DATE,
    LATEST_DATE,
    UPLOAD_REFERENCE,
    AnswerError,
    answer_keys,
)
from pathways.expressions import compile_expression, expression_tree
from pathways.form_definition import UPLOAD_TYPES, ChoiceOption, FormDefinition, Question

ANSWER_ERROR_TEXT: dict[str, str] = {
    "unknown_question": "提交的内容与问卷不符，请刷新页面后重新填写",
    "required": "请回答此题",
    "single_only": "此题只能选择一项",
    "invalid_option": "请从给出的选项中选择",
    "exclusive": "此选项不能与其他选项同时选择",
    "too_long": "回答过长，请精简后再提交",
    "not_a_number": "请填写数字",
    "out_of_range": "数值超出允许范围，请核对后填写",
    "not_answerable": "不能填写此项",
    "specify_required": "请注明其他内容",
    "incomplete": "请选择到最后一级",
    "invalid_text": "含有无效字符",
    "not_a_whole_number": "请填写整数",
    "not_a_date": "请按“年-月-日”格式填写日期",
    "date_out_of_range": "日期超出允许范围",
    "not_a_time": "请按“时:分”格式填写时间",
    "not_an_upload": "上传的文件无效，请重新上传",
    "too_many_files": "上传的文件过多",
    "empty_file": "文件是空的，请重新选择",
    "file_too_large": "文件过大，请选择较小的图片",
    "file_type_not_accepted": "不支持此文件格式，请选择图片",
    "not_an_image": "该文件不是图片，请重新选择",
    "file_type_mismatch": "文件内容与格式不符，请重新选择图片",
    "damaged_image": "图片已损坏或不完整，请重新拍摄或选择",
}
# How the page names the image types a question accepts.
_TYPE_NAMES = {"image/jpeg": "JPG", "image/png": "PNG", "image/heic": "HEIC", "image/webp": "WebP"}
# The same codes said of one matrix row.
_ROW_ERROR_TEXT = {"required": "请回答这一行", "incomplete": "请回答每一行"}


def megabytes(size: int) -> str:
    return f"{round(size / 1048576, 1):g}"


def type_names(question: Question) -> str:
    return "、".join(_TYPE_NAMES.get(t, t) for t in question.content_types)


def error_text(question: Question | None, error: AnswerError) -> str:
    if question is not None and question.type in UPLOAD_TYPES:
        # Said with the question's own limits, so the patient knows what would be taken.
        if error.code == "file_too_large":
            return f"文件过大，请选择不超过 {megabytes(question.max_bytes or 0)} MB 的图片"
        if error.code == "file_type_not_accepted":
            return f"不支持此文件格式，请选择 {type_names(question)} 格式的图片"
        if error.code == "too_many_files":
            return f"最多上传 {question.max_files} 个文件"
    if question is not None and question.type == "matrix":
        if error.part is not None:
            return _ROW_ERROR_TEXT.get(error.code) or ANSWER_ERROR_TEXT[error.code]
        if error.code == "incomplete":
            return _ROW_ERROR_TEXT["incomplete"]
    return ANSWER_ERROR_TEXT.get(error.code, "请检查此题")


def error_texts(form: FormDefinition, errors: list[AnswerError]) -> dict[str, str]:
    """The text to show at each answer key ("q", or "q.row" / "q.option" for its part); the
    first error at a key wins."""
    shown: dict[str, str] = {}
    for error in errors:
        shown.setdefault(error.key, error_text(form.question(error.question_id), error))
    return shown


def question_numbers(form: FormDefinition) -> dict[str, int]:
    """Sections are headings, not questions: they take no number."""
    answerable = [q.id for q in form.questions if q.answerable()]
    return {qid: n for n, qid in enumerate(answerable, start=1)}


def kept_uploads(question: Question, values: list[str]) -> list[str]:
    """Upload references posted with a submission that had errors, to post again. Anything else
    is dropped, so a bad reference is not carried from page to page."""
    if question.type not in UPLOAD_TYPES:
        return []
    return [v for v in values if UPLOAD_REFERENCE.match(v)]


@dataclass(frozen=True)
class CascadeGroup:
    """The options of one cascade level under one parent, shown as an optgroup."""

    parents: tuple[str, ...]
    label: str | None
    options: list[ChoiceOption]

    def chosen(self, values: list[str], level: int) -> str | None:
        """The value chosen in this group, when the posted path goes through its parent."""
        if len(values) > level and tuple(values[:level]) == self.parents:
            return values[level]
        return None


def cascade_levels(question: Question) -> list[list[CascadeGroup]]:
    """Every level of a cascade, each with all its options grouped by parent: without the
    script, every level is a select listing them all, and the server checks the path."""
    levels = [[CascadeGroup((), None, question.options)]]
    while True:
        below = [
            CascadeGroup(
                (*group.parents, option.value),
                f"{group.label} › {option.label}" if group.label else option.label,
                option.children,
            )
            for group in levels[-1]
            for option in group.options
            if option.children
        ]
        if not below:
            return levels
        levels.append(below)


def _tree(source: str | None) -> dict[str, Any] | None:
    return expression_tree(compile_expression(source)) if source else None


def _cascade_nodes(options: list[ChoiceOption]) -> list[dict[str, Any]]:
    return [
        {"v": o.value, "l": o.label, "end": o.ends_form, "c": _cascade_nodes(o.children)}
        for o in options
    ]


def form_logic(form: FormDefinition) -> dict[str, Any]:
    """What the page's script needs to work out, as check_answers does, which questions are
    shown and where the form ends: each question's conditions as expression trees and what
    makes its answer valid (an invalid answer is not kept, so a condition does not see it)."""
    questions: list[dict[str, Any]] = []
    for q in form.questions:
        entry: dict[str, Any] = {
            "id": q.id,
            "type": q.type,
            "show": _tree(q.show_if),
            "end": _tree(q.end_if),
            "options": [o.value for o in q.options],
            "ends": [o.value for o in q.options if o.ends_form],
            "exclusive": [o.value for o in q.options if o.exclusive],
            "other": other.value if (other := q.other_option()) else None,
            "maxLength": q.max_length,
            "otherMaxLength": q.other_max_length,
            "rows": [r.id for r in q.rows],
        }
        if q.type == "number":
            entry["min"], entry["max"] = q.minimum, q.maximum
        if q.type == "rating":
            entry["min"], entry["max"] = q.rating_range() or (0, 0)
        if q.type == "date":
            entry["minDate"], entry["maxDate"] = date_bounds(q)
        if q.type == "cascade":
            entry["tree"] = _cascade_nodes(q.options)
        questions.append(entry)
    return {"questions": questions}


def date_bounds(question: Question) -> tuple[str, str]:
    """The dates a date question accepts, for the input's min and max."""
    low = max(EARLIEST_DATE, question.min_date or EARLIEST_DATE)
    high = min(LATEST_DATE, question.max_date or LATEST_DATE)
    return low.isoformat(), high.isoformat()


def form_context(
    form: FormDefinition,
    values: dict[str, list[str]],
    errors: list[AnswerError],
    *,
    upload_path: str | None = None,
    file_urls: Mapping[str, str] | None = None,
    draft_path: str | None = None,
    draft_saved_at: datetime | None = None,
    preview: bool = False,
) -> dict[str, Any]:
    """What form.html renders from: the form, what was posted (shown again after errors) and
    the errors, each at its answer key. ``upload_path`` is where the page's script sends files
    (none: the files go with the form); ``file_urls`` the signed links of uploaded files to
    show again, by reference; ``draft_path`` where the page's script saves a draft (none: no
    drafts), ``draft_saved_at`` when the draft shown was saved; ``preview``: a designer's
    preview, which cannot be submitted."""
    shown = error_texts(form, errors)
    keys = answer_keys(form)
    return {
        "form": form,
        "has_uploads": any(q.type in UPLOAD_TYPES for q in form.questions),
        "upload_path": upload_path,
        "draft_path": draft_path,
        "draft_saved_at": draft_saved_at,
        "preview": preview,
        "file_urls": dict(file_urls or {}),
        "megabytes": megabytes,
        "type_names": type_names,
        "values": values,
        "errors": shown,
        "error_count": len(errors),
        "failed": {e.question_id for e in errors},
        # Keys of no question (a stale or tampered page) are said once, at the top.
        "general_errors": sorted({text for key, text in shown.items() if key not in keys}),
        "numbers": question_numbers(form),
        "logic": form_logic(form),
        "cascade_levels": cascade_levels,
        "date_bounds": date_bounds,
        "kept_uploads": kept_uploads,
    }
