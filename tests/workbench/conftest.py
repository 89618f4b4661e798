"""The workbench is tried against the same worlds as the processes it shows: pathways, review
and payments (their fixtures, shared)."""

from tests.pathways.conftest import pathway_stack
from tests.payments.conftest import pay_world
from tests.prescriptions.conftest import rx_stack

__all__ = ["pathway_stack", "pay_world", "rx_stack"]
