"""The suite's privacy check finds what it must (a check that cannot fail is no check)."""

from __future__ import annotations

from privacy import find_leaks, persona_secrets

from apdu.identity import mask_card_number, mask_name, mask_ssn


def test_every_persona_gives_its_ssn_name_and_card_number() -> None:
    labels = {secret.label for secret in persona_secrets()}
    assert {"ordinary-2.0 ssn", "ordinary-2.0 name", "ordinary-2.0 card_number"} <= labels


def test_plain_and_hex_forms_are_found_and_masked_forms_are_not() -> None:
    secrets = persona_secrets()
    lines = [
        "event=tap card=A01023450",  # a card number in clear
        "event=apdu data=343430303030313939303033303731303237",  # the SSN as APDU hex
        "event=apdu data=B3 C2 BE B2 E2 F9",  # the name's GB18030 bytes, spaced hex
        f"event=tap card={mask_card_number('A01023450')} name={mask_name('陈静怡')}",
        f"event=tap ssn={mask_ssn('440000199003071027')}",
    ]
    leaks = find_leaks(lines, secrets)
    assert [leak.split(":")[0] for leak in leaks] == ["log line 1", "log line 2", "log line 3"]
    assert "ordinary-2.0 card_number" in leaks[0] and "ordinary-2.0 ssn" in leaks[1]
    assert "ordinary-2.0 name" in leaks[2]
