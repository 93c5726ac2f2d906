"""`make bench`: sipp load through the real stack against a pure-dialplan baseline (PERF-1..3).

Modules: `run` (orchestration, lock, table, result file), `screening` (PERF-1), `recording`
(PERF-2), `lookup` (PERF-3), `sipp`/`rtpcap` (load and its wire timestamps), `procs` (child
processes and CPU), `state` (what the bench changes in the DB/astdb and how it is restored).
"""
