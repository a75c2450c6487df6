"""Field types of rule configurations (pydantic), shared by every rule kind.

Metric names and labels are spelled once, in ``app.schemas`` (pure pydantic), so that
the gates package needs nothing from the registry (whose schemas import its database
models).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from app.schemas import Label as Label
from app.schemas import MetricName as MetricName

Finite = Annotated[float, Field(allow_inf_nan=False)]
RuleName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
