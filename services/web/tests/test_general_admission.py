"""General admission through the pages (docs/general-admission.md): a seller lists a quantity
with the sell form, buyers see how many are left and choose how many to buy, and the order,
My orders and the dashboard count in units."""

from __future__ import annotations

import re
from collections.abc import Callable
from uuid import UUID, uuid4

from ticketing_common.testing import wait_until

from .conftest import Browser, field_error, input_value


async def sell_units(browser: Browser, title: str, price: str, quantity: str) -> UUID:
    response = await browser.submit(
        "/tickets/new",
        {"title": title, "price": price, "quantity": quantity},
        form_page="/tickets/new",
    )
    assert response.status_code == 303, response.text
    return UUID(response.headers["location"].rsplit("/", 1)[-1])


def offered_quantities(page: str) -> list[str]:
    select = re.search(r'<select id="quantity" name="quantity">(.*?)</select>', page, re.S)
    return re.findall(r'<option value="(\d+)"', select.group(1)) if select else []


async def test_a_seller_lists_units_with_the_sell_form_and_buyers_see_how_many_are_left(
    browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    form = await browser.get("/tickets/new")
    assert "How many (general admission)" in form.text
    refused = await browser.submit(
        "/tickets/new",
        {"title": "Standing", "price": "40", "quantity": "0"},
        form_page="/tickets/new",
    )
    assert refused.status_code == 400
    assert field_error(refused.text, "quantity") == "Quantity must be between 1 and 10000"
    assert input_value(refused.text, "quantity") == "0"
    assert 'data-ticket-id="' not in (await browser.get("/")).text  # nothing listed

    ticket_id = await sell_units(browser, "Standing", "40", "12")
    landing = (await browser.get("/")).text
    assert f'data-ticket-id="{ticket_id}"' in landing
    assert "12 left" in landing
    # The seller's dashboard counts its units.
    dashboard = (await browser.get("/dashboard")).text
    assert re.search(r'data-units="available">12<', dashboard)
    assert re.search(r'data-total="for-sale">12<', dashboard)

    buyer = make_browser()
    await buyer.sign_up(f"{uuid4().hex}@example.com")
    page = (await buyer.get(f"/tickets/{ticket_id}")).text
    assert "12 left" in page
    # Up to the most one order may hold (orders' MAX_UNITS_PER_ORDER, 10 by default).
    assert offered_quantities(page) == [str(n) for n in range(1, 11)]


async def test_a_buyer_orders_three_units_and_the_order_and_my_orders_show_the_total(
    browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    ticket_id = await sell_units(browser, "Standing", "40", "4")
    buyer, latecomer = make_browser(), make_browser()
    for visitor in (buyer, latecomer):
        await visitor.sign_up(f"{uuid4().hex}@example.com")
    page = f"/tickets/{ticket_id}"
    assert offered_quantities((await buyer.get(page)).text) == ["1", "2", "3", "4"]

    async def ordered() -> str | None:
        # Retried until orders has heard of the listing (an event away).
        response = await buyer.submit(f"{page}/purchase", {"quantity": "3"}, form_page=page)
        return response.headers["location"] if response.status_code == 303 else None

    order_page = await wait_until(ordered, timeout=30, interval=0.2)
    order = (await buyer.get(order_page)).text
    assert "3 \N{MULTIPLICATION SIGN} $40.00" in order
    assert "Pay $120.00" in order
    orders = (await buyer.get("/orders")).text
    assert re.search(r'<td class="quantity">3</td>\s*<td class="price">\$120\.00</td>', orders)

    # Tickets counts the held units from orders' event: 1 left, 3 held.
    async def counted() -> str | None:
        text = (await latecomer.get(page)).text
        return text if "1 left" in text else None

    assert offered_quantities(await wait_until(counted, timeout=30, interval=0.2)) == ["1"]
    dashboard = (await browser.get("/dashboard")).text
    assert re.search(r'data-units="held">3<', dashboard)

    # Asking for more than are left (a page shown before) is refused on the form.
    refused = await latecomer.submit(f"{page}/purchase", {"quantity": "2"}, form_page=page)
    assert refused.status_code == 409
    assert "Not enough tickets left" in refused.text
    assert offered_quantities(refused.text) == ["1"]
