"""What `Allow` says: every method of the routes of the requested resource.

FastAPI makes one route per decorator, so `/applications` is two routes (GET and POST); when no
route takes the method, Starlette answers 405 with the `Allow` of the first route whose path
matched only, and has no answer for `OPTIONS` at all. `allowed_methods` asks every route, for
the 405 of `problems.py` and for `OPTIONS`, which is answered 204 with the same header.
When templates of different resources match one path (`/cas/import` and `/cas/{ca_id}`), the
one with fewer parameters names the resource, as it does in the documentation.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import Scope


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods the routes of `scope`'s path take, with OPTIONS; empty when none matches."""
    by_specificity: dict[int, set[str]] = {}
    for route in iter_route_contexts(list(routes)):
        methods = route.methods
        if methods and route.matches(scope)[0] is not Match.NONE:
            parameters = (route.path or "").count("{")
            by_specificity.setdefault(parameters, set()).update(methods)
    if not by_specificity:
        return []
    return sorted(by_specificity[min(by_specificity)] | {"OPTIONS"})
