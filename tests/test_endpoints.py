from __future__ import annotations

from ctid.privacy import mask_number
from ctid.tracker.endpoints import EndpointDirectory, PartyKind, split_channel


def test_split_channel_names() -> None:
    assert split_channel("PJSIP/1001-0000002f") == ("PJSIP", "1001")
    assert split_channel("PJSIP/carrier-00000031") == ("PJSIP", "carrier")
    assert split_channel("Local/1006@seats-00000000;1") == ("Local", "1006@seats")


def test_without_config_numeric_endpoints_are_seats_and_named_ones_trunks() -> None:
    directory = EndpointDirectory()
    assert directory.classify("PJSIP/1001-00000000").seat == "1001"
    assert directory.classify("PJSIP/carrier-00000001").kind is PartyKind.TRUNK
    local = directory.classify("Local/1006@seats-00000000;2")
    assert (local.kind, local.local_pair) == (PartyKind.LOCAL, "Local/1006@seats-00000000")
    assert directory.classify("ConfBridge/0x1-0001").kind is PartyKind.OTHER


def test_configured_seats_map_endpoints_to_seat_ids() -> None:
    directory = EndpointDirectory({"1001": "zhang.wei", "2001": "zhang.wei"}, ["carrier"])
    assert directory.classify("PJSIP/2001-0000000a").seat == "zhang.wei"
    assert directory.classify("PJSIP/1009-0000000a").kind is PartyKind.OTHER
    assert directory.classify("PJSIP/carrier-0000000b").kind is PartyKind.TRUNK


def test_with_trunks_listed_every_other_phone_is_a_seat() -> None:
    directory = EndpointDirectory(trunks=["sbc"])
    assert directory.classify("PJSIP/alice-00000001").seat == "alice"
    assert directory.classify("PJSIP/sbc-00000002").kind is PartyKind.TRUNK


def test_numbers_are_masked_unless_asked() -> None:
    assert mask_number("13800138000") == "138******00"
    assert mask_number("13800138000", show=True) == "13800138000"
    assert mask_number("1001") == "1001"


def test_configured_seats_without_trunks_still_find_named_trunks() -> None:
    directory = EndpointDirectory({"1001": "1001"})
    assert directory.classify("PJSIP/carrier-00000001").kind is PartyKind.TRUNK
    assert directory.classify("PJSIP/1009-00000002").kind is PartyKind.OTHER
