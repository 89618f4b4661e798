"""Complaints and praise (SAT-3): the pure rules of a case's life. No I/O; the workflow in
workflows/complaint.py runs them."""
