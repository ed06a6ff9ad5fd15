"""The provider's tests run with the issuer at the test client's own address, most of
them with shop one registered and a person signed in at Qianbao."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from qianbao.settings import Settings
from tests.openplatform.oidc.helpers import BASE, Shop, register_shop, sign_in_person


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.public_base_url = BASE
    return settings


@pytest.fixture
def person(client: TestClient) -> uuid.UUID:
    """A new person, signed in at Qianbao: the client holds their session."""
    return sign_in_person(client)


@pytest.fixture
def shop(client: TestClient, person: uuid.UUID) -> Shop:
    """Shop one, registered with Qianbao, with the person signed in, ready to log in to it."""
    return register_shop(client)
