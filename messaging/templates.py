"""Message templates (MSG-2): one template renders an SMS text and, optionally, a WeChat
template message. Platform templates ship as YAML under templates/messages; team and personal
ones live in the database. Every template is checked when it is saved: it may use only the
variables it declares, its category must supply them, and its SMS must fit the segment limit,
so a patient never receives a message with a blank where a name or a link should be.

User-written templates are rendered in Jinja's immutable sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import jinja2
import yaml
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from core.templates import date_filters
from core.validation import Slug, Text, describe_validation_error
from messaging.categories import (
    CATEGORY_VARIABLES,
    COMMON_VARIABLES,
    Category,
    sample_value,
)
from messaging.sms import sms_size

PLATFORM_DIR = Path(__file__).resolve().parent.parent / "templates" / "messages"
VARIABLE_NAME = r"^[a-z][a-z0-9_]{0,39}$"


WeChatField = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")]


class WeChatTemplate(BaseModel):
    """A WeChat official-account template message: its fields and the page it opens.

    The template id itself is assigned by WeChat per official account, so it is configuration
    (CAREPATH_WECHAT_TEMPLATE_IDS), not part of the template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Keys are the template's field names (first, keyword1, remark); a value is the text with
    # its {placeholders}. Neither may hold control characters, which PostgreSQL refuses (NUL).
    data: dict[WeChatField, Text] = Field(min_length=1, max_length=20)
    url: Annotated[Text, Field(max_length=1000)] | None = None


class TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Slug
    category: Category
    name: str = Field(min_length=1, max_length=100)
    variables: list[str] = Field(default_factory=list)
    sms: str = Field(min_length=1, max_length=2000)
    wechat: WeChatTemplate | None = None


@dataclass(frozen=True)
class TemplateProblem:
    field: str
    message: str


@dataclass(frozen=True)
class Rendered:
    sms: str
    wechat: dict[str, Any] | None  # {"data": {field: {"value": text}}, "url": str | None}


class MissingVariables(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"missing template variables: {', '.join(names)}")
        self.names = names


def make_environment(tz: ZoneInfo) -> jinja2.Environment:
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )
    env.filters.update(date_filters(tz))
    return env


def _sources(spec: TemplateSpec) -> Iterator[tuple[str, str]]:
    yield "sms", spec.sms
    if spec.wechat is not None:
        for key, source in spec.wechat.data.items():
            yield f"wechat.data.{key}", source
        if spec.wechat.url is not None:
            yield "wechat.url", spec.wechat.url


def _one_line(text: str) -> str:
    # Template lines are joined without a separator, as Chinese text runs on; a template that
    # needs a space (after a link, so phones do not swallow the next characters) writes it.
    return "".join(line.strip() for line in text.splitlines())


def check_template(
    spec: TemplateSpec, env: jinja2.Environment, *, max_sms_segments: int
) -> list[TemplateProblem]:
    """Every problem with a template, each naming the field it is in."""
    problems: list[TemplateProblem] = []
    declared = set(spec.variables)
    for index, name in enumerate(spec.variables):
        if not re.match(VARIABLE_NAME, name):
            problems.append(TemplateProblem(f"variables[{index}]", f"'{name}' is not a valid name"))
    provided = CATEGORY_VARIABLES.get(spec.category)
    if provided is not None:
        for name in sorted(declared - provided - COMMON_VARIABLES):
            problems.append(
                TemplateProblem(
                    "variables",
                    f"category '{spec.category}' does not supply variable '{name}'",
                )
            )
    parsed_ok = True
    for field, source in _sources(spec):
        try:
            used = meta.find_undeclared_variables(env.parse(source))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(TemplateProblem(field, f"template syntax error: {exc.message}"))
            parsed_ok = False
            continue
        for name in sorted(used - declared - COMMON_VARIABLES):
            problems.append(TemplateProblem(field, f"uses variable '{name}' that is not declared"))
    if parsed_ok and not problems:
        sample = {name: sample_value(name) for name in declared | COMMON_VARIABLES}
        try:
            rendered = render_template(spec, env, sample)
        except jinja2.TemplateError as exc:
            problems.append(TemplateProblem("sms", f"does not render: {exc}"))
        else:
            size = sms_size(rendered.sms)
            if size.segments > max_sms_segments:
                problems.append(
                    TemplateProblem(
                        "sms",
                        f"with sample data the SMS is {size.units} characters, "
                        f"{size.segments} segments ({size.encoding}); the limit is "
                        f"{max_sms_segments} segments",
                    )
                )
    return problems


@lru_cache(maxsize=1024)
def _compiled(env: jinja2.Environment, source: str) -> jinja2.Template:
    # Compiling a template costs more than rendering it, and every message renders one (py-spy,
    # issue 15); an edited template is a different source, so it is never served stale.
    return env.from_string(source)


def render_template(
    spec: TemplateSpec, env: jinja2.Environment, variables: Mapping[str, Any]
) -> Rendered:
    missing = sorted(set(spec.variables) - set(variables))
    if missing:
        raise MissingVariables(missing)
    sms = _one_line(_compiled(env, spec.sms).render(**variables))
    wechat = None
    if spec.wechat is not None:
        wechat = {
            "data": {
                key: {"value": _one_line(_compiled(env, source).render(**variables))}
                for key, source in spec.wechat.data.items()
            },
            "url": _one_line(_compiled(env, spec.wechat.url).render(**variables))
            if spec.wechat.url
            else None,
        }
    return Rendered(sms=sms, wechat=wechat)


class TemplateCatalogError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_platform_templates(
    directory: Path = PLATFORM_DIR, *, max_sms_segments: int = 4
) -> dict[str, TemplateSpec]:
    """The platform templates, each checked like a saved one; refuses to load a broken set."""
    env = make_environment(ZoneInfo("Asia/Shanghai"))
    templates: dict[str, TemplateSpec] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            spec = TemplateSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except ValidationError as exc:
            problems.extend(f"{path.name}: {line}" for line in describe_validation_error(exc))
            continue
        if spec.code != path.stem:
            problems.append(f"{path.name}: code '{spec.code}' must match the file name")
        problems.extend(
            f"{path.name}: {p.field}: {p.message}"
            for p in check_template(spec, env, max_sms_segments=max_sms_segments)
        )
        templates[spec.code] = spec
    if problems:
        raise TemplateCatalogError(problems)
    return templates
