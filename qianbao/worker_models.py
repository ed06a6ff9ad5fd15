"""The schedule of ``qianbao worker``'s periodic jobs, shared by every worker."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from qianbao.db import Base, UTCDateTime


class WorkerJob(Base):
    """One row per periodic job (``qianbao/jobs.py``): when it is due next, and which
    worker holds it until when. A worker killed mid-job leaves its lease to run out;
    the next worker then takes the job over."""

    __tablename__ = "worker_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    leased_by: Mapped[str | None] = mapped_column(String(128), default=None)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_count: Mapped[int] = mapped_column(default=0)
