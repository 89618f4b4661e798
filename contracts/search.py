"""The custom search attributes an operator finds runs by in the Temporal UI (issue 15):
``PatientId = "P0002" AND ExecutionStatus = "Running"``.

Only identifiers that are no personal data: PatientId is the patient's number in the hospital's
HIS (what staff see on every page and what the run's workflow id already carries), never a name,
phone or ID number. Set when a workflow starts (children carry their parent's), upserted when
they change. ``infra.search_attributes`` registers them on a server.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

PATIENT_ID = SearchAttributeKey.for_keyword("PatientId")
PATHWAY_ID = SearchAttributeKey.for_keyword("PathwayId")
PATHWAY_VERSION = SearchAttributeKey.for_int("PathwayVersion")
DEPARTMENT = SearchAttributeKey.for_keyword("Department")
WARD = SearchAttributeKey.for_keyword("Ward")
HOSPITAL = SearchAttributeKey.for_keyword("Hospital")
PRESCRIPTION_NO = SearchAttributeKey.for_keyword("PrescriptionNo")
ORDER_NO = SearchAttributeKey.for_keyword("OrderNo")

# Set by Temporal itself on a run a schedule starts: the schedule's nominal time for it (for a
# run caught up after an outage, or backfilled, not when it actually started). Not registered.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

ALL_KEYS = (
    PATIENT_ID,
    PATHWAY_ID,
    PATHWAY_VERSION,
    DEPARTMENT,
    WARD,
    HOSPITAL,
    PRESCRIPTION_NO,
    ORDER_NO,
)


def search_attributes(
    *,
    patient: str | None = None,
    pathway: str | None = None,
    pathway_version: int | None = None,
    department: str | None = None,
    ward: str | None = None,
    hospital: str | None = None,
    prescription_no: str | None = None,
    order_no: str | None = None,
) -> TypedSearchAttributes:
    """The attributes a workflow starts with; those not given (None or empty) are left unset."""
    pairs: list[SearchAttributePair[str] | SearchAttributePair[int]] = [
        SearchAttributePair(key, value)
        for key, value in (
            (PATIENT_ID, patient),
            (PATHWAY_ID, pathway),
            (DEPARTMENT, department),
            (WARD, ward),
            (HOSPITAL, hospital),
            (PRESCRIPTION_NO, prescription_no),
            (ORDER_NO, order_no),
        )
        if value
    ]
    if pathway_version is not None:
        pairs.append(SearchAttributePair(PATHWAY_VERSION, pathway_version))
    return TypedSearchAttributes(pairs)
