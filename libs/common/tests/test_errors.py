"""The shared error shape: every expected failure renders {"errors": [{message, field}]}."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from ticketing_common.errors import Conflict, TooManyRequests, install_error_handlers
from ticketing_common.money import Price


class Item(BaseModel):
    title: str = Field(min_length=1)
    price: Price


router = APIRouter()


@router.post("/items", status_code=201)
async def create_item(item: Item) -> dict[str, str]:
    return {"title": item.title, "price": str(item.price)}


@router.get("/conflict")
async def conflict() -> None:
    raise Conflict("Ticket is reserved")


@router.get("/limited")
async def limited() -> None:
    raise TooManyRequests(retry_after=30)


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals")


def make_client() -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_invalid_body_is_400_listing_every_invalid_field() -> None:
    async with make_client() as client:
        response = await client.post("/items", json={"title": "", "price": -1})
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"title", "price"}


async def test_missing_fields_are_named() -> None:
    async with make_client() as client:
        response = await client.post("/items", json={})
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"title", "price"}


async def test_price_with_three_decimals_is_400() -> None:
    async with make_client() as client:
        response = await client.post("/items", json={"title": "x", "price": 10.001})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "price"


async def test_valid_price_keeps_its_exact_decimal_value() -> None:
    async with make_client() as client:
        response = await client.post("/items", json={"title": "x", "price": 19.99})
    assert response.status_code == 201
    assert Decimal(response.json()["price"]) == Decimal("19.99")


async def test_malformed_json_is_400_without_field() -> None:
    async with make_client() as client:
        response = await client.post(
            "/items", content=b'{"title": ', headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Malformed JSON body"}]}


@pytest.mark.parametrize(
    "content",
    [
        b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b', "price": 1}',
        b"[" * 100_000,
        b'{"title": "x", "price": ' + b"9" * 5_000 + b"}",
        '{"title": "é", "price": 1}'.encode("latin-1"),
        b'{"title": "x", "price": 1e400}',
        b'{"title": "x", "price": NaN}',
        b'{"title": "\\udc00", "price": 1}',
    ],
    ids=[
        "deep-nesting",
        "deep-unclosed",
        "huge-integer",
        "not-utf8",
        "overflow",
        "nan",
        "surrogate",
    ],
)
async def test_body_that_breaks_the_parser_is_400_not_500(content: bytes) -> None:
    async with make_client() as client:
        response = await client.post(
            "/items", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors
    assert all(error["message"] for error in errors)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_400(content_type: str) -> None:
    async with make_client() as client:
        response = await client.post(
            "/items", content=b"title=x&price=1", headers={"content-type": content_type}
        )
    assert response.status_code == 400
    assert "errors" in response.json()


async def test_json_array_body_is_400() -> None:
    async with make_client() as client:
        response = await client.post("/items", json=[1, 2])
    assert response.status_code == 400


async def test_domain_error_renders_its_status_and_message() -> None:
    async with make_client() as client:
        response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {"errors": [{"message": "Ticket is reserved"}]}


async def test_rate_limit_error_carries_retry_after() -> None:
    async with make_client() as client:
        response = await client.get("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"


async def test_unknown_route_is_404_in_the_shared_shape() -> None:
    async with make_client() as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Not found"}]}


async def test_unexpected_error_is_generic_500_without_internals() -> None:
    async with make_client() as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json() == {"errors": [{"message": "Something went wrong"}]}
