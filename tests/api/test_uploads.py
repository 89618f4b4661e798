"""Photos and signatures on the patient page: the upload endpoint, the signed links that show
the files, the files encrypted on disk, and submissions that may only name their own files,
with the page's script (uploads first) and without it (files posted with the form).

The task is written directly, its run pinned to the demo form that holds every question type;
the run's workflow is real (started by the discharge event on the dev server), so a submission
is signalled to it."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from PIL import Image, ImageOps
from sqlmodel import func, select

from core.links import FileLinkSigner
from core.models import AuditEntry, CareTask, TaskStatus, Upload
from pathways.answers import UPLOAD_REFERENCE
from tests.api.conftest import DEMO_FORM, FormTask, add_task, link_signer
from tests.images import GPS_IFD, HEIC, JPEG, photo, png

DEMO = DEMO_FORM
CJK = re.compile(r"[\u4e00-\u9fff]")
SIGNATURE = png(120, 40, (20, 20, 20))
PHOTO = png(64, 48)
# Everything the demo form needs besides the signature, as a patient without fever answers it.
ANSWERS: dict[str, Any] = {
    "willing": "yes",
    "overall": "good",
    "symptoms": ["none"],
    "department": "internal",
    "pain_site": ["limbs", "upper", "hand"],
    "has_fever": "no",
    "medicine_time": "08:30",
    "pain": "2",
    "stars": "5",
    "recommend": "9",
    "sleep.falling_asleep": "good",
    "sleep.waking": "fair",
    "sleep.daytime": "good",
}


async def _another_task(form_task: FormTask) -> FormTask:
    async with form_task.api.sessions() as session:
        task = await session.get(CareTask, form_task.task_id)
        assert task is not None
    other = await add_task(form_task.api, task.workflow_id, task.patient_id, "upload-other")
    token = link_signer(form_task.api).issue(other, datetime.now(UTC) + timedelta(days=1))
    return FormTask(form_task.api, other, token)


def _card(html: str, qid: str) -> str:
    start = html.index(f'id="q-{qid}"')
    end = html.find('<div class="card', start)
    return html[start : end if end >= 0 else len(html)]


# ---- uploading ---------------------------------------------------------------------------


async def test_a_photo_is_uploaded_and_shown_only_through_its_link(form_task: FormTask) -> None:
    api = form_task.api
    response = await form_task.upload("wound_photo", PHOTO, "image/png", "伤口.png")

    assert response.status_code == 201, response.text
    body = response.json()
    reference = body["reference"]
    assert UPLOAD_REFERENCE.match(reference)
    assert body["content_type"] == "image/png"
    assert body["size"] == len(PHOTO)
    assert response.headers["cache-control"] == "no-store"
    shown = await api.http.get(body["url"])
    assert shown.status_code == 200
    assert shown.content == PHOTO
    assert shown.headers["content-type"] == "image/png"
    assert shown.headers["cache-control"].startswith("private")
    assert shown.headers["x-content-type-options"] == "nosniff"
    # The reference alone opens nothing.
    assert (await api.http.get(f"/files/{reference}")).status_code == 403
    (row,) = await form_task.uploads()
    assert (row.task_id, row.question_id, row.size) == (
        form_task.task_id,
        "wound_photo",
        len(PHOTO),
    )
    assert len(row.digest) == 64
    async with api.sessions() as session:
        audited = await session.exec(
            select(AuditEntry).where(AuditEntry.action == "followup.file_uploaded")
        )
        assert [e.target_id for e in audited.all()] == [reference]


async def test_other_photo_types_are_taken(form_task: FormTask) -> None:
    for data, declared in (
        (JPEG, "image/jpeg"),
        (photo("WEBP"), "image/webp"),
        (JPEG, "image/jpg"),
    ):
        response = await form_task.upload("wound_photo", data, declared)
        assert response.status_code in (200, 201), (declared, response.text)
    # The same bytes twice (image/jpg is image/jpeg) are one upload.
    assert len(await form_task.uploads()) == 2
    # HEIC keeps where the photo was taken, and staff browsers cannot show it: only a form that
    # names it takes it (an iPhone sends JPEG to a page that does not accept HEIC).
    heic = await form_task.upload("wound_photo", HEIC, "image/heic")
    assert heic.status_code == 415
    assert heic.json()["code"] == "file_type_not_accepted"


async def test_a_phone_photo_is_kept_without_where_when_and_with_what_it_was_taken(
    form_task: FormTask,
) -> None:
    taken = photo("JPEG", orientation=6)
    response = await form_task.upload("wound_photo", taken, "image/jpeg", "IMG_0001.jpg")
    assert response.status_code == 201, response.text
    shown = await form_task.api.http.get(response.json()["url"])
    assert shown.status_code == 200

    kept = Image.open(io.BytesIO(shown.content))
    # Only the orientation is left, so staff see the wound the right way up.
    assert dict(kept.getexif()) == {0x0112: 6}
    assert kept.getexif().get_ifd(GPS_IFD) == {}
    assert "comment" not in kept.info
    assert b"iPhone" not in shown.content
    assert b"IMG_0001" not in shown.content
    assert ImageOps.exif_transpose(kept).size == (24, 32)  # shown upright: taken sideways
    original = Image.open(io.BytesIO(taken))
    assert kept.tobytes() == original.tobytes()  # the same pixels: not re-encoded
    assert response.json()["size"] == len(shown.content) < len(taken)


async def test_a_double_tap_stores_the_signature_once(form_task: FormTask) -> None:
    first = await form_task.upload("signature", SIGNATURE, "image/png", "signature.png")
    again = await form_task.upload("signature", SIGNATURE, "image/png", "signature.png")

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json()["reference"] == first.json()["reference"]
    assert len(await form_task.uploads()) == 1
    stored = [p for p in form_task.api.settings.uploads_path.rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [first.json()["reference"]]


async def test_the_file_on_disk_is_not_the_image(form_task: FormTask) -> None:
    response = await form_task.upload("signature", SIGNATURE, "image/png")
    reference = response.json()["reference"]

    on_disk = form_task.files.path(reference).read_bytes()
    assert SIGNATURE not in on_disk
    assert b"\x89PNG" not in on_disk
    assert b"IHDR" not in on_disk
    assert form_task.files.read(reference) == SIGNATURE


async def test_refused_files_are_named_and_nothing_is_kept(form_task: FormTask) -> None:
    max_photo = DEMO.question("wound_photo").max_bytes  # type: ignore[union-attr]
    assert max_photo is not None
    cases = [
        # (question, bytes, declared type, status, code)
        ("wound_photo", JPEG + b"\x00" * max_photo, "image/jpeg", 413, "file_too_large"),
        # Past the body's cap: refused while reading, never buffered whole.
        ("signature", SIGNATURE + b"\x00" * (3 * 1024 * 1024), "image/png", 413, "file_too_large"),
        ("wound_photo", PHOTO, "text/plain", 415, "file_type_not_accepted"),
        ("signature", JPEG, "image/jpeg", 415, "file_type_not_accepted"),
        ("wound_photo", b"%PDF-1.7\n" + b"x" * 100, "image/jpeg", 415, "not_an_image"),
        ("wound_photo", b"<svg/>", "image/svg+xml", 415, "file_type_not_accepted"),
        # PNG declared, JPEG bytes.
        ("signature", JPEG, "image/png", 415, "file_type_mismatch"),
        ("wound_photo", b"", "image/jpeg", 422, "empty_file"),
        # A photo cut short on its way: its picture data has no end.
        ("wound_photo", JPEG[: len(JPEG) // 2], "image/jpeg", 422, "damaged_image"),
        ("summary", PHOTO, "image/png", 404, "not_an_upload_question"),
        ("nope", PHOTO, "image/png", 404, "not_an_upload_question"),
    ]
    for question, data, declared, status_code, code in cases:
        response = await form_task.upload(question, data, declared)
        assert response.status_code == status_code, (code, response.text)
        body = response.json()
        assert body["code"] == code
        assert CJK.search(body["message"]), body
    too_large = (await form_task.upload(*cases[0][:3])).json()["message"]
    assert too_large == "文件过大，请选择不超过 10 MB 的图片"
    no_file = await form_task.api.http.post(
        form_task.upload_path("wound_photo"), data={"file": "not a file"}
    )
    assert no_file.status_code == 422
    assert no_file.json()["code"] == "no_file"
    broken = await form_task.api.http.post(
        form_task.upload_path("wound_photo"),
        content=b"--x\r\nContent-Disposition: form-data; name=file; filename=a\r\n",
        headers={"content-type": "multipart/form-data"},
    )
    assert broken.status_code == 400
    assert await form_task.uploads() == []
    assert [p for p in form_task.api.settings.uploads_path.rglob("*") if p.is_file()] == []


async def test_uploading_through_a_broken_link(form_task: FormTask) -> None:
    api = form_task.api
    token = form_task.token
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    expired = link_signer(api).issue(form_task.task_id, datetime.now(UTC) - timedelta(minutes=1))
    for link, status_code, code in (
        (tampered, 404, "invalid_link"),
        ("not-a-token", 404, "invalid_link"),
        (expired, 410, "link_expired"),
    ):
        response = await api.http.post(
            f"/p/{link}/uploads/signature", files={"file": ("s.png", SIGNATURE, "image/png")}
        )
        assert response.status_code == status_code, response.text
        assert response.json()["code"] == code
        assert CJK.search(response.json()["message"])
    assert await form_task.uploads() == []


async def test_a_file_link_that_was_altered_or_has_expired(form_task: FormTask) -> None:
    api = form_task.api
    response = await form_task.upload("signature", SIGNATURE, "image/png")
    reference, url = response.json()["reference"], response.json()["url"]
    query = dict(httpx.URL(url).params)
    signer = FileLinkSigner(api.settings.link_secret.get_secret_value())
    old = signer.issue(reference, datetime.now(UTC) - timedelta(seconds=1))
    other = "upl_" + "Z" * 32
    forged = signer.issue(other, datetime.now(UTC) + timedelta(hours=1))

    for path, status_code, text in (
        (f"/files/{reference}?expires={query['expires']}&sig=AAAA{query['sig'][4:]}", 403, "无效"),
        (
            f"/files/{reference}?expires={int(query['expires']) + 60}&sig={query['sig']}",
            403,
            "无效",
        ),
        (f"/files/{reference}?expires=x&sig={query['sig']}", 403, "无效"),
        (f"/files/{reference}?expires={old.expires}&sig={old.signature}", 403, "过期"),
        # Signed, but no such file.
        (f"/files/{other}?expires={forged.expires}&sig={forged.signature}", 404, "不存在"),
    ):
        shown = await api.http.get(path)
        assert shown.status_code == status_code, path
        assert text in shown.text
        assert shown.headers["x-content-type-options"] == "nosniff"
        assert "Traceback" not in shown.text
    assert (await api.http.get(url)).status_code == 200


# ---- submitting --------------------------------------------------------------------------


async def test_a_form_answered_with_uploaded_files_is_accepted(form_task: FormTask) -> None:
    signature = (await form_task.upload("signature", SIGNATURE, "image/png")).json()
    photo = (await form_task.upload("wound_photo", PHOTO, "image/png")).json()

    response = await form_task.api.http.post(
        form_task.path,
        data={
            **ANSWERS,
            "symptoms": ["wound"],
            "wound_photo": photo["reference"],
            "signature": signature["reference"],
        },
    )

    assert response.status_code == 200, response.text
    assert "提交成功" in response.text


async def test_references_of_another_task_or_question_are_refused(form_task: FormTask) -> None:
    other = await _another_task(form_task)
    elsewhere = (await other.upload("signature", SIGNATURE, "image/png")).json()["reference"]
    as_photo = (await form_task.upload("wound_photo", PHOTO, "image/png")).json()["reference"]
    unknown = "upl_" + "S" * 32

    for reference in (elsewhere, as_photo, unknown):
        response = await form_task.api.http.post(
            form_task.path, data={**ANSWERS, "signature": reference}
        )
        assert response.status_code == 422, reference
        signature = _card(response.text, "signature")
        assert "上传的文件无效，请重新上传" in signature
        # Nothing of someone else's is shown again, nor linked.
        assert reference not in signature
        assert "/files/" not in signature
    async with form_task.api.sessions() as session:
        task = await session.get(CareTask, form_task.task_id)
        assert task is not None
        assert task.status == TaskStatus.SENT


async def test_files_posted_with_the_form_without_the_script(form_task: FormTask) -> None:
    """Without JavaScript the page posts multipart: the files are stored as the script would
    have uploaded them, kept across a submission with errors, and answer the questions."""
    api = form_task.api
    incomplete = {k: v for k, v in ANSWERS.items() if k != "overall"}
    response = await api.http.post(
        form_task.path,
        data={**incomplete, "symptoms": ["wound"]},
        files=[
            ("signature", ("signature.png", SIGNATURE, "image/png")),
            ("wound_photo", ("伤口.png", PHOTO, "image/png")),
            # The camera input left empty still posts a part.
            ("wound_photo", ("", b"", "application/octet-stream")),
        ],
    )

    assert response.status_code == 422, response.text
    html = response.text
    assert "请回答此题" in _card(html, "overall")
    uploads = {u.question_id: u.reference for u in await form_task.uploads()}
    assert set(uploads) == {"signature", "wound_photo"}
    for question, reference in uploads.items():
        card = _card(html, question)
        assert f'name="{question}" value="{reference}" checked' in card
        link = re.search(r'<img src="([^"]+)"', card)
        assert link is not None
        shown = await api.http.get(link.group(1).replace("&amp;", "&"))
        assert shown.status_code == 200
    assert 'enctype="multipart/form-data"' in html

    # Posted again as the page holds them (kept boxes checked), now complete.
    again = await api.http.post(
        form_task.path,
        data={**ANSWERS, "symptoms": ["wound"], **uploads},
        files=[("wound_photo", ("", b"", "application/octet-stream"))],
    )
    assert again.status_code == 200, again.text
    assert "提交成功" in again.text
    assert len(await form_task.uploads()) == 2


async def test_a_refused_file_posted_with_the_form_is_said_at_its_question(
    form_task: FormTask,
) -> None:
    response = await form_task.api.http.post(
        form_task.path,
        data=ANSWERS,
        files=[("signature", ("photo.jpg", JPEG, "image/jpeg"))],
    )

    assert response.status_code == 422
    signature = _card(response.text, "signature")
    assert "不支持此文件格式，请选择 PNG 格式的图片" in signature
    assert "请回答此题" not in signature
    assert "有 1 个问题需要修改" in response.text
    assert await form_task.uploads() == []


async def test_a_new_file_replaces_the_kept_one(form_task: FormTask) -> None:
    first = (await form_task.upload("signature", SIGNATURE, "image/png")).json()["reference"]
    redrawn = png(120, 40, (0, 0, 90))

    response = await form_task.api.http.post(
        form_task.path,
        data={**ANSWERS, "signature": first},
        files=[("signature", ("signature.png", redrawn, "image/png"))],
    )

    assert response.status_code == 200, response.text
    async with form_task.api.sessions() as session:
        count = await session.exec(select(func.count()).select_from(Upload))
        assert count.one() == 2


async def test_a_submission_too_large_gets_a_clear_page(form_task: FormTask) -> None:
    huge = b"\x00" * (45 * 1024 * 1024)
    response = await form_task.api.http.post(
        form_task.path,
        data=ANSWERS,
        files=[("signature", ("signature.png", SIGNATURE + huge, "image/png"))],
    )

    assert response.status_code == 413
    assert "图片过大" in response.text
    assert await form_task.uploads() == []
