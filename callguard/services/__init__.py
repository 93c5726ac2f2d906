"""Operator services (ADM-1, ADM-2): one module per resource, the single place that validates
and writes it. The CLI and the HTTP API are thin over them: the same operation, the same
errors (`base.AdminError` with the HTTP status; the CLI exits 2), the clock passed in.

Each function takes a sync Session inside the caller's transaction and validates everything
before it writes anything, so an error leaves the database as it was (ADM-2, REL-4).
"""
