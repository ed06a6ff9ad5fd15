"""``python -m marketplace``: the shop on 127.0.0.1:8001, beside `qianbao serve --demo`."""

from __future__ import annotations

import argparse
import os
import time

import uvicorn

from marketplace.app import create_app
from marketplace.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description="The demo wholesale marketplace.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    arguments = parser.parse_args()
    # The shop runs in Beijing time, as a shop on Alipay does: Alipay's SDK stamps each
    # request with the local clock and the gateway refuses a stale timestamp.
    os.environ.setdefault("TZ", "Asia/Shanghai")
    time.tzset()
    settings = Settings.from_environment()
    uvicorn.run(create_app(settings), host=arguments.host, port=arguments.port)


if __name__ == "__main__":
    main()
