"""The physical-exam records (PX-1..8): bound accounts, bookings, results kept under the
platform's standard items, results held until their item is mapped, the vendor's dictionary,
and the personalised list drawn from a patient's questionnaire answers. Callers commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.exam import STATUS_RANK, ListedItem
from core.models import (
    CareTask,
    ExamAccount,
    ExamBooking,
    ExamItemMapping,
    ExamMessage,
    ExamResult,
    ExamResultHold,
    ExamVendorItem,
    FormResponse,
    Patient,
    utcnow,
)
from exams.catalogue import Catalogue, StandardItem, catalogue, judged_abnormal, match_item
from exams.checks import OnRecord
from exams.codes import Reply
from exams.personalised import personalised_list
from integrations.exam_protocol import (
    SEX_CODES,
    Customer,
    DictionaryItem,
    ResultItem,
    compact,
)


def on_record(patient: Patient) -> OnRecord:
    return OnRecord(name=patient.name, sex=patient.sex, birth_date=patient.birth_date)


def customer_of(patient: Patient) -> Customer:
    """The patient as the vendor's customer dataset (for US-K2 and the US-H1 answer)."""
    return Customer(
        name=patient.name,
        sex=SEX_CODES.get(patient.sex or "", "1"),
        birth_date=compact(patient.birth_date or date(1900, 1, 1)),
    )


async def account_by_no(
    session: AsyncSession, account_no: str
) -> tuple[ExamAccount, Patient] | None:
    account = (
        await session.exec(select(ExamAccount).where(ExamAccount.account_no == account_no))
    ).first()
    if account is None:
        return None
    patient = await session.get(Patient, account.patient_id)
    return (account, patient) if patient is not None else None


# ---- what the patient answered --------------------------------------------------------------


async def latest_answers(session: AsyncSession, patient_id: str) -> dict[str, dict[str, Any]]:
    """Form id → the values of the patient's latest submission to it: answers and scores."""
    rows = await session.exec(
        select(FormResponse)
        .join(CareTask, col(CareTask.id) == FormResponse.task_id)
        .where(CareTask.patient_id == patient_id)
        .order_by(col(FormResponse.submitted_at))
    )
    latest: dict[str, dict[str, Any]] = {}
    for response in rows.all():
        latest[response.form_id] = {**response.answers, **response.scores}
    return latest


async def drawn_list(session: AsyncSession, patient: Patient, today: date) -> list[ListedItem]:
    answers = await latest_answers(session, patient.id)
    return [
        ListedItem(
            code=item.code,
            name=item.name,
            category=item.category,
            required=item.required,
            reason=item.reason,
        )
        for item in personalised_list(
            birth_date=patient.birth_date,
            sex=patient.sex,
            today=today,
            answers=answers,
            known=catalogue(),
        )
    ]


async def vendor_codes(session: AsyncSession) -> dict[str, str]:
    """Standard code → the vendor's code for it (the first mapped), to book in its terms."""
    rows = await session.exec(select(ExamItemMapping).order_by(col(ExamItemMapping.vendor_code)))
    found: dict[str, str] = {}
    for mapping in rows.all():
        found.setdefault(mapping.standard_code, mapping.vendor_code)
    return found


# ---- bookings ---------------------------------------------------------------------------


async def latest_booking(session: AsyncSession, patient_id: str) -> ExamBooking | None:
    rows = await session.exec(
        select(ExamBooking)
        .where(ExamBooking.patient_id == patient_id)
        .order_by(col(ExamBooking.created_at).desc())
    )
    return rows.first()


async def booking_for_exam(
    session: AsyncSession, account_no: str, exam_no: str
) -> ExamBooking | None:
    """The booking an exam number belongs to: the one that has it, else the account's latest
    booking still waiting for the vendor's number."""
    found = (await session.exec(select(ExamBooking).where(ExamBooking.exam_no == exam_no))).first()
    if found is not None:
        return found
    waiting = await session.exec(
        select(ExamBooking)
        .where(
            ExamBooking.account_no == account_no,
            col(ExamBooking.exam_no).is_(None),
            col(ExamBooking.status).in_(["booking", "booked"]),
        )
        .order_by(col(ExamBooking.created_at).desc())
    )
    return waiting.first()


def advance(booking: ExamBooking, status: str) -> None:
    """Moves the status forward only (pushes and the workflow write in either order)."""
    if STATUS_RANK.get(status, -1) > STATUS_RANK.get(booking.status, -1):
        booking.status = status
    booking.updated_at = utcnow()


# ---- results ----------------------------------------------------------------------------


async def mappings(session: AsyncSession) -> dict[str, str]:
    rows = await session.exec(select(ExamItemMapping))
    return {m.vendor_code: m.standard_code for m in rows.all()}


@dataclass(frozen=True)
class SavedResults:
    saved: int
    # The vendor's names of the items that matched nothing and are held.
    held: list[str]


async def save_results(
    session: AsyncSession,
    *,
    exam_no: str,
    patient_id: str,
    change_type: int,
    changed_at: datetime,
    items: Sequence[ResultItem],
) -> SavedResults:
    """Adds, edits or deletes each item's result (1/2/3); a change older than the one already
    applied to the item changes nothing (pushes may arrive out of order). An item that matches
    no standard item is held, its latest change kept, until staff map it."""
    known = catalogue()
    mapped = await mappings(session)
    saved, held = 0, []
    for item in items:
        standard = match_item(item.item_code, item.item_name, mapped, known)
        if standard is None:
            await _hold(session, exam_no, patient_id, change_type, changed_at, item)
            held.append(item.item_name)
            continue
        if item.item_code not in mapped:
            # Matched by name: remembered, so the next push needs no guessing.
            session.add(
                ExamItemMapping(
                    vendor_code=item.item_code, standard_code=standard.code, mapped_by="auto"
                )
            )
            mapped[item.item_code] = standard.code
        saved += await _apply(session, exam_no, patient_id, change_type, changed_at, item, standard)
    await session.flush()
    return SavedResults(saved=saved, held=held)


async def _apply(
    session: AsyncSession,
    exam_no: str,
    patient_id: str,
    change_type: int,
    changed_at: datetime,
    item: ResultItem,
    standard: StandardItem,
) -> int:
    row = (
        await session.exec(
            select(ExamResult).where(
                ExamResult.exam_no == exam_no, ExamResult.vendor_code == item.item_code
            )
        )
    ).first()
    if row is not None and row.changed_at >= changed_at:
        return 0  # overtaken by a later change already applied
    if row is None:
        row = ExamResult(
            exam_no=exam_no,
            patient_id=patient_id,
            vendor_code=item.item_code,
            standard_code=standard.code,
            name=standard.name,
            value="",
            changed_at=changed_at,
        )
        session.add(row)
    row.changed_at = changed_at
    row.standard_code = standard.code
    row.deleted = change_type == 3
    if change_type != 3:
        row.value = item.value
        row.unit = item.unit or standard.unit
        row.reference_range = item.reference_range
        row.abnormal = judged_abnormal(standard, item.value, item.abnormal_flag)
    return 1


async def _hold(
    session: AsyncSession,
    exam_no: str,
    patient_id: str,
    change_type: int,
    changed_at: datetime,
    item: ResultItem,
) -> None:
    row = (
        await session.exec(
            select(ExamResultHold).where(
                ExamResultHold.exam_no == exam_no, ExamResultHold.vendor_code == item.item_code
            )
        )
    ).first()
    if row is not None and row.changed_at >= changed_at:
        return
    if row is None:
        row = ExamResultHold(
            exam_no=exam_no,
            patient_id=patient_id,
            vendor_code=item.item_code,
            vendor_name=item.item_name,
            change_type=change_type,
            item={},
            changed_at=changed_at,
        )
        session.add(row)
    row.change_type = change_type
    row.changed_at = changed_at
    row.vendor_name = item.item_name
    row.item = item.model_dump(mode="json")
    row.received_at = utcnow()


class UnknownItem(LookupError):
    pass


async def map_item(
    session: AsyncSession, vendor_code: str, standard_code: str, by: str
) -> list[str]:
    """Maps a vendor item to a standard one and saves the results held for it; the exam
    numbers whose results changed. Mapping an item again to another standard item moves its
    later results only (those saved stay as they were saved)."""
    known: Catalogue = catalogue()
    standard = known.items.get(standard_code)
    if standard is None:
        raise UnknownItem(f"no standard item '{standard_code}'")
    mapping = await session.get(ExamItemMapping, vendor_code)
    if mapping is None:
        session.add(
            ExamItemMapping(vendor_code=vendor_code, standard_code=standard_code, mapped_by=by)
        )
    else:
        mapping.standard_code, mapping.mapped_by, mapping.mapped_at = standard_code, by, utcnow()
    holds = (
        await session.exec(select(ExamResultHold).where(ExamResultHold.vendor_code == vendor_code))
    ).all()
    exams = []
    for hold in holds:
        item = ResultItem.model_validate(hold.item)
        await _apply(
            session,
            hold.exam_no,
            hold.patient_id,
            hold.change_type,
            hold.changed_at,
            item,
            standard,
        )
        await session.delete(hold)
        exams.append(hold.exam_no)
    await session.flush()
    return sorted(set(exams))


async def held_results(
    session: AsyncSession, visible: ColumnElement[bool]
) -> Sequence[ExamResultHold]:
    rows = await session.exec(
        select(ExamResultHold)
        .where(visible)
        .order_by(col(ExamResultHold.received_at), col(ExamResultHold.id))
    )
    return rows.all()


async def results_of(session: AsyncSession, exam_no: str) -> list[ExamResult]:
    """The exam's results in the catalogue's order (as a report lists them)."""
    rows = await session.exec(
        select(ExamResult).where(ExamResult.exam_no == exam_no, col(ExamResult.deleted).is_(False))
    )
    order = {code: index for index, code in enumerate(catalogue().items)}
    return sorted(rows.all(), key=lambda r: (order.get(r.standard_code, len(order)), r.name))


# ---- the vendor's dictionary (US-H5) ------------------------------------------------------


async def apply_dictionary(
    session: AsyncSession, change_type: int, items: Sequence[DictionaryItem]
) -> None:
    """Adds or updates (1, 2; either one when the other was meant) or deletes (3) each item;
    an added item whose name the catalogue knows is mapped at once."""
    known = catalogue()
    for item in items:
        row = await session.get(ExamVendorItem, item.code)
        if change_type == 3:
            if row is not None:
                await session.delete(row)
            continue
        if row is None:
            row = ExamVendorItem(
                code=item.code,
                name=item.name,
                category_code=item.category_code,
                category_name=item.category_name,
            )
            session.add(row)
        row.name, row.unit, row.updated_at = item.name, item.unit, utcnow()
        row.category_code, row.category_name = item.category_code, item.category_name
        standard = known.by_name(item.name)
        if standard is not None and await session.get(ExamItemMapping, item.code) is None:
            session.add(
                ExamItemMapping(
                    vendor_code=item.code, standard_code=standard.code, mapped_by="auto"
                )
            )
    await session.flush()


# ---- messages received -------------------------------------------------------------------


class MessageConflict(Exception):
    """A message id used again for a different body."""


async def replayed(
    session: AsyncSession, message_id: str, interface: str, body_sha256: str
) -> Reply | None:
    """The answer given to this message before, if it took effect; MessageConflict when the id
    came with another body."""
    seen = await session.get(ExamMessage, message_id)
    if seen is None:
        return None
    if seen.interface != interface or seen.body_sha256 != body_sha256:
        raise MessageConflict(f"message_id '{message_id}' was used for a different message")
    return Reply(code=seen.code, level="成功" if seen.code == "0" else "错误", message=seen.message)


def remember(
    session: AsyncSession, message_id: str, interface: str, body_sha256: str, reply: Reply
) -> None:
    session.add(
        ExamMessage(
            message_id=message_id,
            interface=interface,
            body_sha256=body_sha256,
            code=reply.code,
            message=reply.message[:500],
        )
    )
