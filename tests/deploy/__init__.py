"""End-to-end tests of prefect.yaml against a real prefect server."""
