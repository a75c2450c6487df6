"""Running a create under an Idempotency-Key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import IdempotencyKeyDep, UowDep
from app.api.uow import UnitOfWork
from app.auth.roles import Principal
from app.idempotency import service as idempotency


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The request's Idempotency-Key (if any), with what claiming it needs."""

    uow: UnitOfWork
    request: Request
    key: str | None

    def run(
        self,
        principal: Principal,
        body: BaseModel,
        *,
        status_code: int,
        create: Callable[[], BaseModel],
    ) -> Response:
        """Call ``create`` once per key; a replay answers the stored body and status.

        The key is scoped to the caller's token, and the request's method, path and body
        are its fingerprint: the same key with another body is a 409, not a replay.

        The unit of work commits here, in the route's thread hop, once the answer is
        serialised: the commit does not need a hop of its own (docs/decisions/0007), and
        the connection is given back by the hop that took it. A failure before this point
        leaves the rollback to the unit of work's dependency, as for every route.
        """
        response: Response
        if self.key is None:
            response = Response(
                create().model_dump_json(), status_code=status_code, media_type="application/json"
            )
        else:
            scope = principal.token_id or principal.name
            payload = body.model_dump(mode="json")
            fp = idempotency.fingerprint(self.request.method, self.request.url.path, payload)
            session = self.uow.session
            stored = idempotency.claim(session, principal=scope, key=self.key, fp=fp)
            if stored is not None:
                response = JSONResponse(
                    stored.body,
                    status_code=stored.status_code,
                    headers={"Idempotent-Replayed": "true"},
                )
            else:
                answer = create().model_dump(mode="json")
                idempotency.store(
                    session, principal=scope, key=self.key, status_code=status_code, body=answer
                )
                response = JSONResponse(answer, status_code=status_code)
        self.uow.finish()
        return response


async def get_idempotency(request: Request, uow: UowDep, key: IdempotencyKeyDep) -> Idempotency:
    return Idempotency(uow=uow, request=request, key=key)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
