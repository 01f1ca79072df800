"""Schemas used across the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None
    batch_id: str | None = Field(default=None, description="A rejected result import (import_rejected): the batch "
                                                          "whose full report is at /api/v1/result-imports/{batch_id}")


class ErrorResponse(BaseModel):
    error: ErrorBody
