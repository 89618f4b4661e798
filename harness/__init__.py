"""The harness the tests and the benchmarks share: a private PostgreSQL with the migrated schema,
the Temporal servers, the platform's processes and in-process servers, a browser, the test clock,
test settings and secrets, and the worlds (payments, prescriptions) both drive.

Not shipped with the platform, and never imports the tests: pytest fixtures stay in the tests'
conftest files and wrap what is here."""
