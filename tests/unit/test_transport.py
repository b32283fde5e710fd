"""Unit tests for apdu.transport: the T=0 chain (61xx → GET RESPONSE, 6Cxx → re-issue with the
exact Le), ``send`` and close propagation, against a scripted fake card that asserts the exact
bytes of every command, in order (SSC spec doc §3.1; ISO/IEC 7816-4 §5.1.3).
"""

from __future__ import annotations

import re

import pytest
from scripted_connection import ScriptedConnection, hexbytes

from apdu.command import CommandApdu
from apdu.errors import ApduError, ApduFormatError
from apdu.transport import (
    MAX_GET_RESPONSE_ROUNDS,
    Connection,
    GetResponseConnection,
    WrongLengthConnection,
    send,
    t0_chain,
)

AID_SSSE = "7378312E73682EC9E7BBE1B1A3D5CF"
SELECT_SSSE = f"00A404000F{AID_SSSE}00"
# SSC spec doc §2.2: the FCI of a real 3.0 card.
FCI = f"6F1C840F{AID_SSSE}A50988011E9F0C03860103"
SSN_RECORD = "0812" + "313131313131313938313031303131313130"  # 08 12 "111111198101011110"
NAME_RECORD = "091E" + "D5C5C8FD" + "00" * 26  # 09 1E 张三 (GB18030), 00-padded


def _pattern(n: int, start: int = 0) -> bytes:
    """``n`` bytes counting up from ``start``, wrapping at 256.

    :param n: how many bytes
    :param start: the first byte
    """
    return bytes((start + i) % 256 for i in range(n))


# --- the fake itself -----------------------------------------------------------------------------


def test_fake_rejects_bytes_other_than_the_scripted_command() -> None:
    card = ScriptedConnection([("00B2080014", "9000")])
    with pytest.raises(AssertionError, match="sent 00B2080000, expected 00B2080014"):
        card.transmit(hexbytes("00B2080000"))


def test_fake_rejects_a_command_after_the_script_ran_out() -> None:
    card = ScriptedConnection([])
    with pytest.raises(AssertionError, match="after the script ran out"):
        card.transmit(hexbytes("00B2080014"))


def test_fake_fails_when_the_script_is_not_consumed() -> None:
    card = ScriptedConnection([("00B2080014", "9000"), ("00B2090020", "9000")])
    card.transmit(hexbytes("00B2080014"))
    with pytest.raises(AssertionError, match="1 scripted exchanges never happened"):
        card.assert_consumed()


def test_fake_and_the_chain_satisfy_the_connection_protocol() -> None:
    raw = ScriptedConnection([])
    assert isinstance(raw, Connection)
    assert isinstance(t0_chain(raw), Connection)


# --- direct answers (T=1, or a T=0 card that needs no help) --------------------------------------


def test_direct_answer_passes_through_the_chain_untouched() -> None:
    card = ScriptedConnection([("00B2080014", SSN_RECORD + "9000")])
    assert t0_chain(card).transmit(hexbytes("00B2080014")) == (hexbytes(SSN_RECORD), 0x9000)
    card.assert_consumed()


@pytest.mark.parametrize("sw", [0x6A83, 0x6982, 0x9303, 0x6A81, 0x63C2, 0x6282])
def test_direct_error_status_words_pass_through_the_chain_untouched(sw: int) -> None:
    card = ScriptedConnection([("00B2080014", f"{sw:04X}")])
    assert t0_chain(card).transmit(hexbytes("00B2080014")) == (b"", sw)
    card.assert_consumed()


# --- 61xx: GET RESPONSE ------------------------------------------------------------------------


def test_61xx_once_fetches_the_rest_with_get_response_le_xx() -> None:
    card = ScriptedConnection(
        [
            (SELECT_SSSE, "611E"),
            ("00C000001E", FCI + "9000"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes(SELECT_SSSE)) == (hexbytes(FCI), 0x9000)
    card.assert_consumed()


def test_61xx_several_times_joins_every_chunk_in_order() -> None:
    first, second, third = _pattern(16), _pattern(16, 16), _pattern(8, 32)
    card = ScriptedConnection(
        [
            ("00B2090020", "6110"),
            ("00C0000010", first.hex() + "6110"),
            ("00C0000010", second.hex() + "6108"),
            ("00C0000008", third.hex() + "9000"),
        ]
    )
    data, sw = t0_chain(card).transmit(hexbytes("00B2090020"))
    assert data == first + second + third
    assert sw == 0x9000
    card.assert_consumed()


def test_data_sent_along_with_61xx_is_kept_in_front() -> None:
    card = ScriptedConnection(
        [
            ("00B2090020", "AABB6102"),
            ("00C0000002", "CCDD9000"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B2090020")) == (hexbytes("AABBCCDD"), 0x9000)
    card.assert_consumed()


def test_6100_means_256_bytes_and_is_fetched_with_le_00() -> None:
    chunk = _pattern(256)
    card = ScriptedConnection(
        [
            ("00B0000000", "6100"),
            ("00C0000000", chunk.hex() + "9000"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B0000000")) == (chunk, 0x9000)
    card.assert_consumed()


def test_get_response_chain_ends_on_the_final_status_word_even_if_not_9000() -> None:
    card = ScriptedConnection(
        [
            ("00B2090020", "6104"),
            ("00C0000004", "01020304" + "6282"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B2090020")) == (hexbytes("01020304"), 0x6282)
    card.assert_consumed()


def test_card_answering_61xx_forever_raises_after_the_round_cap() -> None:
    card = ScriptedConnection(
        [("00B2090020", "6101")] + [("00C0000001", "AA6101")] * MAX_GET_RESPONSE_ROUNDS
    )
    with pytest.raises(ApduFormatError, match=f"61xx more than {MAX_GET_RESPONSE_ROUNDS} times"):
        t0_chain(card).transmit(hexbytes("00B2090020"))
    card.assert_consumed()  # and nothing more was sent after the cap


def test_exactly_the_round_cap_of_get_responses_is_still_allowed() -> None:
    rounds = MAX_GET_RESPONSE_ROUNDS
    card = ScriptedConnection(
        [("00B2090020", "6101")]
        + [("00C0000001", "AA6101")] * (rounds - 1)
        + [("00C0000001", "AA9000")]
    )
    data, sw = t0_chain(card).transmit(hexbytes("00B2090020"))
    assert (data, sw) == (b"\xaa" * rounds, 0x9000)
    card.assert_consumed()


# --- 6Cxx: re-issue with the exact Le -------------------------------------------------------------


def test_6cxx_reissues_read_record_with_the_exact_le() -> None:
    # SSC spec doc §3.1: READ RECORD with Le = 00 is answered 6Cxx.
    card = ScriptedConnection(
        [
            ("00B2080000", "6C14"),
            ("00B2080014", SSN_RECORD + "9000"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B2080000")) == (hexbytes(SSN_RECORD), 0x9000)
    card.assert_consumed()


def test_6c00_reissues_with_le_256_written_00() -> None:
    chunk = _pattern(256)
    card = ScriptedConnection(
        [
            ("00B0000010", "6C00"),
            ("00B0000000", chunk.hex() + "9000"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B0000010")) == (chunk, 0x9000)
    card.assert_consumed()


def test_6cxx_keeps_the_command_data_and_replaces_only_le() -> None:
    command = "00880000" + "10" + _pattern(16).hex() + "00"
    retry = "00880000" + "10" + _pattern(16).hex() + "08"
    card = ScriptedConnection([(command, "6C08"), (retry, "0102030405060708" + "9000")])
    assert t0_chain(card).transmit(hexbytes(command)) == (_pattern(8, 1), 0x9000)
    card.assert_consumed()


def test_6cxx_is_reissued_only_once() -> None:
    card = ScriptedConnection(
        [
            ("00B2080000", "6C14"),
            ("00B2080014", "6C12"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B2080000")) == (b"", 0x6C12)
    card.assert_consumed()


def test_6cxx_during_get_response_reissues_the_get_response() -> None:
    card = ScriptedConnection(
        [
            ("00B2090020", "6120"),
            ("00C0000020", "6C1E"),
            ("00C000001E", NAME_RECORD[:60] + "9000"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B2090020")) == (
        hexbytes(NAME_RECORD[:60]),
        0x9000,
    )
    card.assert_consumed()


def test_61xx_after_a_6cxx_reissue_is_fetched() -> None:
    card = ScriptedConnection(
        [
            ("00B2090000", "6C20"),
            ("00B2090020", "6120"),
            ("00C0000020", NAME_RECORD + "9000"),
        ]
    )
    assert t0_chain(card).transmit(hexbytes("00B2090000")) == (hexbytes(NAME_RECORD), 0x9000)
    card.assert_consumed()


def test_wrong_length_link_alone_does_not_follow_61xx() -> None:
    card = ScriptedConnection([("00B2090020", "6120")])
    assert WrongLengthConnection(card).transmit(hexbytes("00B2090020")) == (b"", 0x6120)
    card.assert_consumed()


def test_get_response_link_alone_does_not_follow_6cxx() -> None:
    card = ScriptedConnection([("00B2080000", "6C14")])
    assert GetResponseConnection(card).transmit(hexbytes("00B2080000")) == (b"", 0x6C14)
    card.assert_consumed()


def test_6cxx_to_an_unparsable_command_is_a_format_error() -> None:
    card = ScriptedConnection([("00B208000302", "6C14")])  # Lc 03 with 1 byte of data
    with pytest.raises(ApduFormatError, match="short Lc 3 does not match a body of 2 bytes"):
        t0_chain(card).transmit(hexbytes("00B208000302"))
    card.assert_consumed()


# --- send --------------------------------------------------------------------------------------


def test_send_returns_the_data_of_a_9000_answer() -> None:
    card = ScriptedConnection([("00B2080014", SSN_RECORD + "9000")])
    read = CommandApdu(0x00, 0xB2, 0x08, 0x00, le=0x14)
    assert send(t0_chain(card), read) == hexbytes(SSN_RECORD)
    card.assert_consumed()


def test_send_raises_apdu_error_with_command_sw_and_data() -> None:
    card = ScriptedConnection([("00A4020002EF07", "ABCD6A82")])
    select = CommandApdu(0x00, 0xA4, 0x02, 0x00, hexbytes("EF07"))
    with pytest.raises(ApduError) as caught:
        send(t0_chain(card), select)
    assert caught.value.command == hexbytes("00A4020002EF07")
    assert caught.value.sw == 0x6A82
    assert caught.value.data == hexbytes("ABCD")
    assert str(caught.value) == "INS A4: SW 6A82 (file or application not found)"
    card.assert_consumed()


@pytest.mark.parametrize(
    ("sw", "meaning"),
    [
        (0x9303, "application permanently locked"),
        (0x6A81, "function not supported (card blocked)"),
        (0x63C2, "verification failed, 2 tries left"),
        (0x6B01, "wrong parameters P1-P2"),
    ],
)
def test_send_error_message_names_the_status_word_meaning(sw: int, meaning: str) -> None:
    card = ScriptedConnection([("0020000002123F", f"{sw:04X}")])
    verify = CommandApdu(0x00, 0x20, 0x00, 0x00, hexbytes("123F"))
    with pytest.raises(ApduError, match=rf"^INS 20: SW {sw:04X} \({re.escape(meaning)}\)$"):
        send(card, verify)
    card.assert_consumed()


def test_send_reports_the_original_command_after_the_chain_fetched_more() -> None:
    card = ScriptedConnection(
        [
            ("00B2080000", "6C14"),
            ("00B2080014", "6110"),
            ("00C0000010", _pattern(16).hex() + "6A83"),
        ]
    )
    read = CommandApdu(0x00, 0xB2, 0x08, 0x00, le=256)
    with pytest.raises(ApduError) as caught:
        send(t0_chain(card), read)
    assert caught.value.command == hexbytes("00B2080000")
    assert caught.value.sw == 0x6A83
    assert caught.value.data == _pattern(16)
    card.assert_consumed()


# --- close -------------------------------------------------------------------------------------


def test_close_propagates_through_the_whole_chain() -> None:
    card = ScriptedConnection([])
    t0_chain(card).close()
    assert card.close_calls == 1


@pytest.mark.parametrize("link", [WrongLengthConnection, GetResponseConnection])
def test_each_link_closes_its_inner_connection(
    link: type[WrongLengthConnection] | type[GetResponseConnection],
) -> None:
    card = ScriptedConnection([])
    link(card).close()
    assert card.close_calls == 1


def test_chain_used_as_a_context_manager_closes_the_card() -> None:
    card = ScriptedConnection([("00B2080014", SSN_RECORD + "9000")])
    with GetResponseConnection(WrongLengthConnection(card)) as chain:
        chain.transmit(hexbytes("00B2080014"))
        assert card.close_calls == 0
    assert card.close_calls == 1
    card.assert_consumed()


def test_chain_used_as_a_context_manager_closes_the_card_on_an_error() -> None:
    card = ScriptedConnection([("00B2080014", "6A83")])
    with pytest.raises(ApduError), WrongLengthConnection(card) as chain:
        send(chain, CommandApdu(0x00, 0xB2, 0x08, 0x00, le=0x14))
    assert card.close_calls == 1
    card.assert_consumed()
