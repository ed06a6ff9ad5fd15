"""``python -m qianbao``: the same commands as ``qianbao``."""

from qianbao.cli import app

app(prog_name="qianbao")
