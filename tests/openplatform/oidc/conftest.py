"""The provider's tests run with the issuer at the test client's own address."""

from __future__ import annotations

import pytest

from qianbao.settings import Settings
from tests.openplatform.oidc.helpers import BASE


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.public_base_url = BASE
    return settings
