"""REL-4: the AGI environment has no escaping. A dialed number with a CR/LF in it
(`sip:007727%0D%0A@…`, valid SIP) ends the environment early; the fallback must still read
the answers to its commands, and read the number itself exactly (base64 of the channel value)."""

from __future__ import annotations

import base64
import io

from agi_scripts.fastagi import QuietAGI, exact

ENV_HEAD = "agi_network: yes\nagi_network_script: s3cret/inbound\nagi_uniqueid: 1700.1\n"
ENV_TAIL = "agi_context: cg-fallback-inbound\nagi_priority: 3\nagi_threadid: 1\n\n"


def agi_over(env: str, answers: str) -> tuple[QuietAGI, io.StringIO]:
    sent = io.StringIO()
    return QuietAGI(io.StringIO(env + answers), sent), sent


def test_an_extension_with_crlf_does_not_desynchronise_the_answers() -> None:
    called = "007727\r\n"
    env = ENV_HEAD + f"agi_extension: {called}\n" + ENV_TAIL
    b64 = base64.b64encode(f"x{called}".encode()).decode()  # exact() reads "x" + the value
    agi, sent = agi_over(env, f"200 result=1 ({b64})\n200 result=1 (allowed)\n")
    assert agi.env["agi_uniqueid"] == "1700.1"
    # The leftover environment lines are skipped; the first answer is the first command's.
    assert exact(agi, "${EXTEN}") == [called]
    assert agi.get_variable("CALLERID(pres)") == "allowed"
    assert sent.getvalue().splitlines()[0] == 'GET FULL VARIABLE "${BASE64_ENCODE(x${EXTEN})}"'
    agi.finish()


def test_a_well_formed_environment_reads_as_before() -> None:
    env = ENV_HEAD + "agi_extension: 0312345678\n" + ENV_TAIL
    agi, _ = agi_over(env, "200 result=1 (eDAzMTIzNDU2Nzg=)\n200 result=1 (prohib)\n")
    assert agi.env["agi_extension"] == "0312345678"
    assert exact(agi, "${EXTEN}") == ["0312345678"]
    assert agi.get_variable("CALLERID(pres)") == "prohib"
    agi.finish()


def test_an_empty_value_reads_empty() -> None:
    agi, _ = agi_over(ENV_HEAD + ENV_TAIL, "200 result=0\n")
    assert exact(agi, "${CALLERID(num)}", "${EXTEN}") == ["", ""]
    agi.finish()


def test_several_values_in_one_command_split_back_exactly() -> None:
    """One GET FULL VARIABLE for all of a call's facts (REL-1: a round trip with the channel's
    thread each); values with commas, CR/LF or nothing at all come back as they were. Each
    is encoded behind an "x": BASE64_ENCODE of nothing logs a WARNING in Asterisk."""
    values = ["0312345678", "03,1234\r\n", "", "prohib_passed_screen"]
    answer = ",".join(base64.b64encode(f"x{v}".encode()).decode() for v in values)
    agi, sent = agi_over(ENV_HEAD + ENV_TAIL, f"200 result=1 ({answer})\n")
    assert exact(agi, "${EXTEN}", "${CALLERID(num)}", "${CG_FOLLOW}",
                 "${CALLERID(pres)}") == values
    assert sent.getvalue() == ('GET FULL VARIABLE "${BASE64_ENCODE(x${EXTEN})},'
                               '${BASE64_ENCODE(x${CALLERID(num)})},'
                               '${BASE64_ENCODE(x${CG_FOLLOW})},'
                               '${BASE64_ENCODE(x${CALLERID(pres)})}"\n')
    agi.finish()
