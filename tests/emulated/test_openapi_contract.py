"""schemathesis runs sync/openapi.yaml against the reference platform on loopback, and
drivers/hsm-openapi.yaml against the reference HSM service: generated requests (valid and invalid)
are signed like a terminal's (or carry the HSM's bearer token), and every answer must be
documented (status, headers, content type, body schema), no answer may be a server error,
invalid input must be refused and valid input accepted, and an operation that declares the
signature (or the token) must refuse a request without it. Every answer is counted; the
module's report line gives the totals and the run fails on any 500 (issue 10 finding 6).

Signing: schemathesis' auth provider puts a placeholder in ``X-Sscard-Signature``; a
``requests`` auth hook replaces it with the real five headers over the exact bytes sent. A
probe that removes (or fakes) the signature header is therefore sent unsigned, as it must be.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from fuzz_support import Tally, reporting
from hypothesis import HealthCheck, settings
from platform_support import ROOT, TEST_KEYS, LivePlatform, live_platform

from drivers.keyfile import load_root_keys, private_copy
from drivers.virtual.hsm_service import HsmService
from platform_server.terminals import Credentials
from sync.auth import H_SIGNATURE

pytestmark = pytest.mark.emulated

if int(schemathesis.__version__.split(".")[0]) < 4:  # the auth, config and call API of 4.x
    pytest.skip("the contract run needs schemathesis 4", allow_module_level=True)

PLACEHOLDER = "sign-this-request"
MAX_EXAMPLES = 20

# A decode request can be well-formed and still refused (422 {"ok": false}): schema-valid data
# answered 422 is the contract there, not a rejection of valid input. Likewise a well-formed
# confirm request names a deferred row the platform does not hold (404 not_deferred).
CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                "include-path": "/v1/ecard/decode",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["200", "401", "422"]}
                },
            },
            {
                "include-path": "/v1/ecard/confirm",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["200", "401", "404"]}
                },
            },
        ]
    }
)
schema = schemathesis.openapi.from_path(ROOT / "sync" / "openapi.yaml", config=CONFIG)

# A Step1 string can have its schema (a string) and still be refused: 400 -23 (not a Step1
# string) or 422 (the keys cannot serve it) answer schema-valid data by contract.
HSM_CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                "include-path": "/v1/hsm/card-auth",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["200", "400", "422"]}
                },
            }
        ]
    }
)
hsm_schema = schemathesis.openapi.from_path(
    ROOT / "drivers" / "hsm-openapi.yaml", config=HSM_CONFIG
)
HSM_TOKEN = "contract-token-5d1e"
PLATFORM_TALLY = Tally("platform (schemathesis)")
HSM_TALLY = Tally("HSM service (schemathesis)")


@pytest.fixture(scope="module", autouse=True)
def _tallies(request: pytest.FixtureRequest) -> Iterator[None]:
    yield from reporting(request, PLATFORM_TALLY, HSM_TALLY)


@schema.auth()
class SignatureMarker:
    """Marks a generated request as one to sign (the hook signs the bytes actually sent)."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return PLACEHOLDER

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), H_SIGNATURE: data}


class SignedByTerminal(requests.auth.AuthBase):
    """Sign a prepared request that carries the placeholder, with a terminal's key."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.headers.get(H_SIGNATURE) != PLACEHOLDER:
            return request  # a probe without (or with a made-up) signature: sent as it is
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        request.headers.update(self.credentials.sign(str(request.method), request.path_url, body))
        return request


@pytest.fixture(scope="module")
def contract_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    """One platform for the whole contract run, on the real clock."""
    folder: Path = tmp_path_factory.mktemp("contract")
    with live_platform(folder, {"T1": ("gate", "hotel")}, clock=time.time) as running:  # type: ignore[arg-type]
        running.platform.load_catalogue(ROOT / "tests" / "catalogue.toml")
        yield running


@pytest.fixture(scope="module")
def platform_session() -> Iterator[requests.Session]:
    session = PLATFORM_TALLY.session()
    yield session
    session.close()


@pytest.fixture(scope="module")
def contract_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmService]:
    """The reference HSM service with the test roots, requiring a token."""
    roots = private_copy(TEST_KEYS / "test-roots.toml", tmp_path_factory.mktemp("hsm") / "r.toml")
    with HsmService(load_root_keys(roots), token=HSM_TOKEN) as service:
        yield service


@pytest.fixture(scope="module")
def hsm_session() -> Iterator[requests.Session]:
    session = HSM_TALLY.session()
    yield session
    session.close()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_reference_platform_keeps_its_openapi_contract(
    case: schemathesis.Case, contract_platform: LivePlatform, platform_session: requests.Session
) -> None:
    token = (contract_platform.keys_dir / "operator.token").read_text().strip()
    case.call_and_validate(
        base_url=contract_platform.url.rstrip("/"),
        session=platform_session,
        auth=SignedByTerminal(contract_platform.terminals["T1"]),
        headers={"Authorization": f"Bearer {token}"},  # the operator's route (GET /v1/clearing)
    )


@hsm_schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_reference_hsm_service_keeps_its_openapi_contract(
    case: schemathesis.Case, contract_hsm: HsmService, hsm_session: requests.Session
) -> None:
    case.call_and_validate(
        base_url=contract_hsm.url,
        session=hsm_session,
        headers={"Authorization": f"Bearer {HSM_TOKEN}"},
    )
