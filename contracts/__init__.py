"""What crosses the Temporal boundary: workflow inputs and results, signals, updates, queries,
activity payloads and the names that bind them. Depends only on the domain modules (pathways,
prescriptions, messaging rules, core configuration); workflows, activities, services and the API
all import from here, never from each other for these types."""
