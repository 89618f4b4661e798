"""The pathway library shipped with the platform (pathways/library, forms, articles): real plans
from the tenders, loaded and checked exactly as a designer's draft is checked at publication."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.validation import LibraryError, describe_validation_error
from pathways.definition import (
    ArticleDefinition,
    PathwayDefinition,
    PathwaySnapshot,
    validate_definition,
)
from pathways.form_definition import FormDefinition

LIBRARY_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Library:
    definitions: dict[str, PathwayDefinition]
    forms: dict[str, FormDefinition]
    articles: dict[str, ArticleDefinition]


def _yaml_files(directory: Path) -> Iterable[tuple[Path, Any]]:
    for path in sorted(directory.glob("*.yaml")):
        yield path, yaml.safe_load(path.read_text(encoding="utf-8"))


def load_forms(root: Path = LIBRARY_ROOT) -> dict[str, FormDefinition]:
    forms: dict[str, FormDefinition] = {}
    problems: list[str] = []
    for path, data in _yaml_files(root / "forms"):
        try:
            form = FormDefinition.model_validate(data)
        except ValidationError as exc:
            problems.extend(f"{path.name}: {line}" for line in describe_validation_error(exc))
            continue
        forms[form.id] = form
    if problems:
        raise LibraryError(problems)
    return forms


def load_articles(root: Path = LIBRARY_ROOT) -> dict[str, ArticleDefinition]:
    return {
        article.id: article
        for article in (
            ArticleDefinition.model_validate(data) for _, data in _yaml_files(root / "articles")
        )
    }


def load_library(templates: set[str], root: Path = LIBRARY_ROOT) -> Library:
    forms, articles = load_forms(root), load_articles(root)
    definitions: dict[str, PathwayDefinition] = {}
    problems: list[str] = []
    for path, data in _yaml_files(root / "library"):
        definition, found = validate_definition(
            data, forms=forms, articles=articles, templates=templates
        )
        problems.extend(f"{path.name}: {p.path}: {p.message}" for p in found)
        if definition is not None and not found:
            definitions[definition.id] = definition
    if problems:
        raise LibraryError(problems)
    return Library(definitions=definitions, forms=forms, articles=articles)


def snapshot(
    definition: PathwayDefinition,
    version: int,
    forms: Mapping[str, FormDefinition],
    articles: Mapping[str, ArticleDefinition],
) -> PathwaySnapshot:
    """The definition with exactly the forms and articles it uses, to pin a run to."""
    used_forms = {s.action.form for s in definition.steps if s.action.form}
    used_forms |= {o.form for o in definition.outcomes}
    used_articles = {s.action.article for s in definition.steps if s.action.article}
    return PathwaySnapshot(
        definition=definition,
        version=version,
        forms={f: forms[f] for f in sorted(used_forms)},
        articles={a: articles[a] for a in sorted(used_articles)},
    )
