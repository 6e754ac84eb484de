"""The drill and reprotect flows end to end on the simulated estate and a real Prefect engine."""
