"""Enrolment (CM-2): the patients an HIS event made eligible for a pathway that enrols by hand,
and the care manager's decision on each. Where the pathway asks for informed consent, the patient
signs on the care manager's tablet, or a photo of the signed paper form is uploaded; either is kept
as an encrypted file owned by the candidate and shown with the decision afterwards."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select
from starlette.datastructures import UploadFile

from api.deps import ContainerDep, SessionDep
from api.form_view import error_text
from api.permissions import Permission
from api.routers.patient_files import file_url
from api.workbench.auth import (
    MAX_FORM_BYTES,
    Viewer,
    page_requires,
    posted_form,
    posted_with_files,
    visible_record,
)
from api.workbench.exports import download, exported, local_time
from api.workbench.render import render
from core.models import (
    CandidateStatus,
    Encounter,
    EnrollmentCandidate,
    Pathway,
    Patient,
    utcnow,
)
from core.validation import Key
from pathways.answers import AnswerError
from pathways.form_definition import Question
from services import candidates, uploads
from services.candidates import CandidateRefused, Consent
from services.spreadsheets import Column, workbook
from services.staff_lists import patient_brief

router = APIRouter(include_in_schema=False)
ClinicalPage = Annotated[Viewer, Depends(page_requires(Permission.RUNS_OPERATE))]

LIST_LIMIT = 200
TABS = {"pending": "待入组", "enrolled": "已入组", "declined": "未入组"}
# Taken as a form's signature and photo questions are: checked, stripped, encrypted.
SIGNATURE = Question(id="consent_signature", type="signature", text="患者知情同意签名")
SCAN = Question(id="consent_scan", type="photo", text="已签署的知情同意书")
METHODS = {"e_signature": "患者在本设备上签名", "scan": "上传已签署的纸质知情同意书照片"}
# How far ahead a service may be agreed to start (a patient may want to begin after a trip).
START_WITHIN = timedelta(days=90)
CANDIDATE_COLUMNS = (
    Column("患者", 10),
    Column("病历号", 12),
    Column("手机", 14),
    Column("随访计划", 22),
    Column("科室", 14),
    Column("符合条件时间", 18),
    Column("办理时间", 18),
    Column("备注或原因", 30),
)
REFUSALS = {
    "decided": "该患者已由他人办理（入组或不入组），本次未重复办理。",
    "not_enrolling": "该随访计划当前不接受新患者入组。",
    "patient_excluded": "该患者已被排除管理，不能入组。",
    "consent_required": "请先取得患者的知情同意。",
}


@router.get("/w/enrolment", response_class=HTMLResponse)
async def candidate_list(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
    state: Literal["pending", "enrolled", "declined"] = "pending",
) -> HTMLResponse:
    done = request.query_params.get("done")
    return render(
        container,
        request,
        "enrolment.html",
        seen,
        tabs=TABS,
        state=state,
        rows=await _rows(session, seen, state),
        limit=LIST_LIMIT,
        notice={"declined": "已记录不入组的原因"}.get(done or ""),
    )


async def _rows(
    session: SessionDep, seen: Viewer, state: str
) -> list[tuple[EnrollmentCandidate, dict[str, Any], str, str]]:
    """The tab's candidates, each with the patient as the role sees them, the pathway's name and
    the department's."""
    rows = await candidates.list_candidates(session, seen.staff, status=state, limit=LIST_LIMIT)
    patients = await _by_id(session, Patient, {r.patient_id for r in rows})
    pathways = await _by_id(session, Pathway, {r.pathway_id for r in rows})
    encounters = await _by_id(session, Encounter, {r.encounter_id for r in rows if r.encounter_id})
    return [
        (
            row,
            patient_brief(patients[row.patient_id], seen.staff.role),
            pathways[row.pathway_id].name,
            # The HIS's name for the department where there is one, not its code.
            encounters[row.encounter_id].department_name
            if row.encounter_id in encounters
            else row.department_code,
        )
        for row in rows
    ]


@router.get("/w/enrolment.xlsx")
async def candidates_workbook(
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
    state: Literal["pending", "enrolled", "declined"] = "pending",
) -> Response:
    rows = await _rows(session, seen, state)
    stamp = await exported(session, seen, "enrolment", f"state={state}", container.settings.tz)
    tz = container.settings.tz

    data = workbook(
        f"入组管理（{TABS[state]}）",
        [
            f"共 {len(rows)} 人"
            + (f"（只导出了前 {LIST_LIMIT} 人）" if len(rows) >= LIST_LIMIT else ""),
            stamp,
        ],
        CANDIDATE_COLUMNS,
        [
            [
                brief["name"],
                brief["his_patient_id"],
                brief["phone_masked"],
                pathway_name,
                department,
                local_time(row.created_at, tz),
                local_time(row.decided_at, tz),
                row.note or "",
            ]
            for row, brief, pathway_name, department in rows
        ],
    )
    return download(data, f"enrolment-{state}-{utcnow().astimezone(tz).date()}.xlsx")


async def _by_id(session: SessionDep, model: Any, ids: set[str]) -> dict[str, Any]:
    if not ids:
        return {}
    found = await session.exec(select(model).where(col(model.id).in_(sorted(ids))))
    return {row.id: row for row in found.all()}


async def _page(
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: Viewer,
    candidate: EnrollmentCandidate,
    status_code: int = status.HTTP_200_OK,
    **context: Any,
) -> HTMLResponse:
    patient = await session.get(Patient, candidate.patient_id)
    pathway = await session.get(Pathway, candidate.pathway_id)
    assert patient is not None
    assert pathway is not None
    encounter = await session.get(Encounter, candidate.encounter_id or "")
    snapshot = None
    if candidate.status == CandidateStatus.PENDING:
        try:
            snapshot = await candidates.candidate_snapshot(session, candidate)
        except CandidateRefused as refused:
            context.setdefault("notice", REFUSALS[refused.code])
            context.setdefault("notice_tone", "warn")
    today = utcnow().astimezone(container.settings.tz).date()
    return render(
        container,
        request,
        "candidate.html",
        seen,
        status_code,
        candidate=candidate,
        patient=patient_brief(patient, seen.staff.role),
        pathway=pathway,
        encounter=encounter,
        enrollment=snapshot.definition.enrollment if snapshot else None,
        methods=METHODS,
        consent_file=await _consent_file(container, session, candidate),
        today=today.isoformat(),
        latest=(today + START_WITHIN).isoformat(),
        errors=context.pop("errors", {}),
        values=context.pop("values", {"start_on": today.isoformat()}),
        **context,
    )


async def _consent_file(
    container: ContainerDep, session: SessionDep, candidate: EnrollmentCandidate
) -> str | None:
    """A short-lived link to the signature or scan the consent names, if it is one of ours."""
    reference = (candidate.consent or {}).get("reference", "")
    upload = await uploads.find_upload(session, reference)
    if upload is None or upload.enrollment_candidate_id != candidate.id:
        return None
    return file_url(container, upload.reference)


@router.get("/w/enrolment/{candidate_id}", response_class=HTMLResponse)
async def candidate_page(
    candidate_id: Key,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
) -> HTMLResponse:
    candidate = await visible_record(session, seen.staff, EnrollmentCandidate, candidate_id, "患者")
    notice = "已为患者入组，随访计划已开始" if request.query_params.get("done") else None
    return await _page(request, container, session, seen, candidate, notice=notice)


def _start_at(raw: str, today: date, tz: Any) -> tuple[datetime | None, str | None]:
    """When the service starts: now if today, else nine in the morning of the chosen day."""
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return None, "请选择服务开始日期"
    if not today <= day <= today + START_WITHIN:
        return None, "服务开始日期须在今天到90天之内"
    if day == today:
        return utcnow(), None
    return datetime.combine(day, time(9, 0), tzinfo=tz), None


@router.post("/w/enrolment/{candidate_id}/enrol", response_class=HTMLResponse)
async def enrol(
    candidate_id: Key,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
) -> Response:
    limit = (SCAN.max_bytes or 0) + (SIGNATURE.max_bytes or 0) + MAX_FORM_BYTES
    # Two file fields (signature, scan); a browser sends an empty part for the unused one.
    form = await posted_with_files(request, seen, limit, max_files=2)
    try:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        files = {k: v for k, v in form.items() if isinstance(v, UploadFile) and v.size}
        candidate = await _locked(session, seen, candidate_id)
        # The candidate's page again, with what was posted and why it was not taken.
        page_of = partial(
            _page, request, container, session, seen, candidate, values=fields, notice_tone="warn"
        )
        if candidate.status != CandidateStatus.PENDING:
            return await page_of(status.HTTP_409_CONFLICT, notice=REFUSALS["decided"])
        try:
            snapshot = await candidates.candidate_snapshot(session, candidate)
        except CandidateRefused as refused:
            return await page_of(status.HTTP_409_CONFLICT, notice=REFUSALS[refused.code])
        tz = container.settings.tz
        errors: dict[str, str] = {}
        start_at, start_error = _start_at(
            fields.get("start_on", ""), utcnow().astimezone(tz).date(), tz
        )
        if start_error:
            errors["start_on"] = start_error
        note = fields.get("note", "").strip()
        if len(note) > candidates.NOTE_LIMIT:
            errors["note"] = f"备注不能超过{candidates.NOTE_LIMIT}字"
        method = fields.get("consent_method", "")
        question: Question | None = None
        if snapshot.definition.enrollment.requires_consent:
            if method not in METHODS:
                errors["consent_method"] = "请选择知情同意方式"
            else:
                question = SIGNATURE if method == "e_signature" else SCAN
                if question.id not in files:
                    errors[question.id] = (
                        "请患者在签名区域签名" if question is SIGNATURE else "请上传知情同意书照片"
                    )
        if errors:
            return await page_of(status.HTTP_422_UNPROCESSABLE_CONTENT, errors=errors)
        stored: list[uploads.StoredUpload] = []
        consent = None
        if question is not None:
            upload = files[question.id]
            try:
                stored.append(
                    await uploads.store_upload(
                        session,
                        container.files,
                        owner=uploads.UploadOwner.enrolment_candidate(candidate.id),
                        question=question,
                        data=await upload.read((question.max_bytes or 0) + 1),
                        declared_type=upload.content_type,
                    )
                )
            except uploads.UploadRefused as refused:
                text = error_text(question, AnswerError(question.id, refused.code))
                return await page_of(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, errors={question.id: text}
                )
            consent = Consent(
                method="e_signature" if question is SIGNATURE else "scan",
                reference=stored[0].reference,
                signed_at=utcnow(),
            )
        try:
            with uploads.discarded_unless_committed(container.files, stored):
                await candidates.enrol(
                    container.enrolment,
                    session,
                    seen.staff,
                    candidate,
                    consent=consent,
                    start_at=start_at,
                    note=note or None,
                )
                await session.commit()
        except CandidateRefused as refused:
            await session.rollback()
            return await page_of(status.HTTP_409_CONFLICT, notice=REFUSALS[refused.code])
    finally:
        await form.close()
    return RedirectResponse(f"/w/enrolment/{candidate.id}?done=1", status.HTTP_303_SEE_OTHER)


async def _locked(session: SessionDep, seen: Viewer, candidate_id: str) -> EnrollmentCandidate:
    """The candidate, locked until the decision commits: two pages cannot both decide."""
    return await visible_record(
        session, seen.staff, EnrollmentCandidate, candidate_id, "患者", lock=True
    )


@router.post("/w/enrolment/{candidate_id}/decline", response_class=HTMLResponse)
async def decline(
    candidate_id: Key,
    request: Request,
    container: ContainerDep,
    session: SessionDep,
    seen: ClinicalPage,
) -> Response:
    fields = dict(await posted_form(request, seen))
    candidate = await _locked(session, seen, candidate_id)
    page_of = partial(
        _page, request, container, session, seen, candidate, values=fields, notice_tone="warn"
    )
    reason = fields.get("reason", "").strip()
    if not 2 <= len(reason) <= candidates.NOTE_LIMIT:
        error = f"请填写不入组的原因（2～{candidates.NOTE_LIMIT}字）"
        return await page_of(status.HTTP_422_UNPROCESSABLE_CONTENT, errors={"reason": error})
    try:
        candidates.decline(session, seen.staff, candidate, reason)
    except CandidateRefused as refused:
        return await page_of(status.HTTP_409_CONFLICT, notice=REFUSALS[refused.code])
    await session.commit()
    return RedirectResponse("/w/enrolment?done=declined", status.HTTP_303_SEE_OTHER)
