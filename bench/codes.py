"""The e-card code the QR and SM2 benches verify: a fresh holder device's dynamic code, and the
trust list that vouches for the platform key its credential is signed with."""

from __future__ import annotations

from ecard import PrivateKey, issue_credential, make_code, make_trust_list


def signed_code(platform: PrivateKey, root: PrivateKey, now: int) -> tuple[str, bytes]:
    """A code as a holder's phone shows it, valid at ``now``, and its trust list.

    :param platform: the platform key that signs the credential (its algorithm is the code's)
    :param root: the trust-list root key
    :param now: the code's time, seconds since 1970
    :returns: the code's text and the signed trust list naming ``platform``'s public key
    """
    device = PrivateKey.generate(platform.alg)
    credential = issue_credential(
        platform,
        token="ab" * 32,
        region="440100",
        category="3",
        not_before=now - 60,
        not_after=now + 3600,
        device_public_key=device.public_key,
    )
    code = make_code(credential, device, timestamp=now, counter=7)
    return code, make_trust_list([platform.public_key], root, 1, now - 60, now + 86_400)
