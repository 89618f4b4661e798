"""Data scope (SEC-1): which patients, and which of their records, a staff member may see.

The rules live here and only here, as one SQL condition. Lists add it to their query; a single
record is checked with the same condition on its values (``record_in_scope``), and the API
answers 404 when it fails, so a hidden record looks like one that does not exist.

For a patient (a row of their own, such as their messaging preferences):

- organisation: every patient;
- department: the patient has an encounter in the staff member's department;
- ward: ... an encounter in their department and their ward;
- own: an encounter names them (their HIS staff number) as responsible nurse or attending doctor.

For a record that belongs to a department (a run, task, alert, message, prescription, payment
order, consultation, enrolment candidate): organisation sees all; every narrower scope needs the
record's department to be the staff member's (as before SEC-1: department staff see their
department's records), and ward and own add the patient rule above. So own ⊆ ward ⊆ department.
A record without a patient (a message to a bare phone number, a batch) is seen by department
scope through its department only, and not at all by ward or own scope; a record with neither
(a hospital-wide message) only by organisation scope.

Missing attributes fail closed: a department, ward or own scope without the department, ward or
staff number it needs sees nothing (an own scope without a department is not limited to one).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from core.models import DataScope, Encounter
from services.staff import StaffPrincipal


def hospital_wide(staff: StaffPrincipal) -> bool:
    """Whether the staff member sees every patient and every hospital-wide record."""
    return staff.data_scope == DataScope.ORGANISATION


def _encounter_exists(staff: StaffPrincipal, patient_id: Any) -> ColumnElement[bool]:
    encounter = sa.select(col(Encounter.id)).where(col(Encounter.patient_id) == patient_id)
    department, ward = col(Encounter.department_code), col(Encounter.ward)
    if staff.data_scope == DataScope.DEPARTMENT:
        encounter = encounter.where(department == staff.department_code)
    elif staff.data_scope == DataScope.WARD:
        encounter = encounter.where(department == staff.department_code, ward == staff.ward)
    else:  # own
        encounter = encounter.where(
            sa.or_(
                col(Encounter.responsible_nurse) == staff.staff_code,
                col(Encounter.attending_doctor) == staff.staff_code,
            )
        )
    return encounter.exists()


def _condition(
    staff: StaffPrincipal,
    patient_id: Any | None,
    department_code: Any | None,
    *,
    has_department: bool,
) -> ColumnElement[bool]:
    scope = staff.data_scope
    if scope == DataScope.ORGANISATION:
        return sa.true()
    needs = {
        DataScope.DEPARTMENT: (staff.department_code,),
        DataScope.WARD: (staff.department_code, staff.ward),
        DataScope.OWN: (staff.staff_code,),
    }[DataScope(scope)]
    if any(value is None for value in needs):
        return sa.false()
    conditions: list[ColumnElement[bool]] = []
    if has_department and staff.department_code is not None:
        conditions.append(sa.literal(staff.department_code, sa.String) == department_code)
    if scope != DataScope.DEPARTMENT or not has_department:
        if patient_id is None:
            return sa.false()
        conditions.append(_encounter_exists(staff, patient_id))
    return sa.and_(*conditions) if conditions else sa.false()


def patient_filter(staff: StaffPrincipal, patient_id: Any) -> ColumnElement[bool]:
    """Condition on a patient id column (e.g. ``Patient.id``): the patient is in scope."""
    return _condition(staff, patient_id, None, has_department=False)


def record_filter(
    staff: StaffPrincipal, patient_id: Any | None, department_code: Any
) -> ColumnElement[bool]:
    """Condition on a record's patient id and department columns: the record is in scope.
    ``patient_id`` is None for records that never name a patient (batches)."""
    return _condition(staff, patient_id, department_code, has_department=True)


def _value(value: str | None) -> Any:
    return sa.null() if value is None else sa.literal(value, sa.String)


async def _holds(session: AsyncSession, condition: ColumnElement[bool]) -> bool:
    found = await session.exec(sa.select(sa.literal(1)).where(condition))  # type: ignore[call-overload]
    return found.first() is not None


async def patient_in_scope(session: AsyncSession, staff: StaffPrincipal, patient_id: str) -> bool:
    if hospital_wide(staff):
        return True
    return await _holds(session, patient_filter(staff, _value(patient_id)))


async def record_in_scope(
    session: AsyncSession,
    staff: StaffPrincipal,
    *,
    patient_id: str | None,
    department_code: str | None,
) -> bool:
    """Whether one record (by its patient and department) is in the staff member's scope."""
    if hospital_wide(staff):
        return True
    condition = _condition(staff, _value(patient_id), _value(department_code), has_department=True)
    return await _holds(session, condition)
