"""Shapes of the scan resolver's API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ScanIn(BaseModel):
    text: str = Field(max_length=2048, description="what the code says, as read or pasted")


class ScanOut(BaseModel):
    kind: Literal["cashier", "receive_code", "pay_for_me"]
    path: str = Field(description="the page on this site the code stands for")
