"""The staff workbench: server-rendered pages for nurses, doctors, care managers, pharmacists,
finance staff and administrators (see ARCHITECTURE.md)."""
