"""A page of a list: how many rows, and how many to skip."""

from typing import Annotated

from fastapi import Query

from shared.models._columns import INT_MAX

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=INT_MAX)]
