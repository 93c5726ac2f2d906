"""The one Asterisk adapter (issue #15): every caller outside the call path reaches Asterisk
through here, with one error convention.

- `callguard.asterisk.ari`: the synchronous ARI reader (the CLI and the API's worker threads):
  JSON body, None for 404, `AsteriskUnavailable` for anything else.
- `callguard.asterisk.client`: the async ARI client of the call path (`ari_app.client`,
  re-exported as it is).
- `callguard.asterisk.cli`: `asterisk -rx` (project root or system install).
- `callguard.asterisk.wav`: the recording-file (WAV header) helpers.
"""
