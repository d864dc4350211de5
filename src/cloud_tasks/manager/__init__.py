"""The job lifecycle: the pool manager, the task database and job reports (SPEC §6, §12, §13)."""
