"""Every JSON request body has an example in the OpenAPI document, and it is a valid body."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel, SecretStr

from certforge.api.app import create_app
from certforge.api.settings import ApiSettings
from certforge.api.validation_messages import model_in


def _body_models() -> list[tuple[str, type[BaseModel]]]:
    app = create_app(ApiSettings(leaf_keks=SecretStr("docs:" + "A" * 43 + "=")))
    found: dict[str, type[BaseModel]] = {}
    for route in app.router.routes:
        original = getattr(route, "original_router", None)  # an included router
        for inner in original.routes if original is not None else [route]:
            if isinstance(inner, APIRoute) and inner.body_field is not None:
                model = model_in(inner.body_field.field_info.annotation)
                if model is not None:
                    found[inner.name] = model
    return sorted(found.items())


BODIES = _body_models()


def test_every_json_body_is_found() -> None:
    assert len(BODIES) >= 20


@pytest.mark.parametrize(("route", "model"), BODIES, ids=[name for name, _ in BODIES])
def test_body_has_valid_examples(route: str, model: type[BaseModel]) -> None:
    examples = model.model_json_schema().get("examples")
    assert examples, f"{model.__name__} ({route}) has no example"
    for example in examples:
        model.model_validate(example)
