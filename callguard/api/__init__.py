"""The HTTP API and the recordings page (ADM-2, REC-FILE-4): aiohttp, loopback only."""
