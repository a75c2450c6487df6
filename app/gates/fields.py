"""Field types of rule configurations (pydantic), shared by every rule kind.

They repeat the registry's spelling of metric names and labels so that the gates
package needs nothing from the registry (whose schemas import its database models).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Finite = Annotated[float, Field(allow_inf_nan=False)]
RuleName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
MetricName = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:/@-]*$")
]
Label = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
