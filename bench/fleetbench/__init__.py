"""The parts of `bench/logger.sh --fleet` (bench/fleet_bench.py): a scratch
PostgreSQL, the log service on a Unix socket, CPU of a process tree, the ramp's
arithmetic. Standard library (and httpx, from the logger's venv) only."""
