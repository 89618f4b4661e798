"""A patient's half-filled form (FORM-3), kept so they can leave and come back through the same
link: saved as they type (the page's script) or with the page's save button (without it), not
checked (it is unfinished), only kept to what the form could hold, and deleted with the
submission."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import FormDraft
from pathways.answers import answer_keys
from pathways.form_definition import FormDefinition

# No answer key of a form takes more values than a multiple choice has options, and no value is
# longer than the longest text answer allows.
MAX_VALUES_PER_KEY = 50
MAX_VALUE_LENGTH = 5000


def kept(form: FormDefinition, raw: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """What of the posted answers a draft keeps: the form's own keys only, values as typed
    (they are checked at submission), bounded so a draft cannot grow without end."""
    keys = answer_keys(form)
    return {
        key: [value[:MAX_VALUE_LENGTH] for value in values[:MAX_VALUES_PER_KEY]]
        for key, values in raw.items()
        if key in keys and values
    }


async def save_draft(
    session: AsyncSession,
    task_id: str,
    form: FormDefinition,
    raw: Mapping[str, Sequence[str]],
    at: datetime,
) -> FormDraft:
    draft = await session.get(FormDraft, task_id, with_for_update=True)
    if draft is None:
        draft = FormDraft(task_id=task_id, saved_at=at)
        session.add(draft)
    draft.answers = kept(form, raw)
    draft.saved_at = at
    return draft


async def load_draft(session: AsyncSession, task_id: str) -> FormDraft | None:
    return await session.get(FormDraft, task_id)


async def discard_draft(session: AsyncSession, task_id: str) -> None:
    draft = await session.get(FormDraft, task_id)
    if draft is not None:
        await session.delete(draft)
