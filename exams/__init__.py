"""Physical-exam integration (PX-1..8): the vendor interfaces' return codes, the platform's
standard item catalogue, personalised exam lists from questionnaire answers, and how a vendor's
results are matched and judged. Pure: no I/O."""
