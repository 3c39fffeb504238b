"""The web client's pages (SPEC §6). Thin: read the form, call the API, render or redirect.

Every mutation is a form posting here; the route calls the API and answers with a
303 to the page to show next (post/redirect/get), or re-renders the form with
each error next to its field and the visitor's input kept. Every POST passes the
CSRF check first (``csrf.check``), so a rejected post reaches no API. A page for
signed-in visitors only takes ``SignedIn`` (``dependencies``), which sends anyone
else to the sign-in page and back.

One module per group of pages: ``accounts`` (signing up, in and out), ``tickets``
(the listing, selling, a ticket and buying it), ``orders`` (orders, paying, the
e-ticket and refunds), ``dashboard`` (a seller's listings, editing and withdrawing
them) and ``checkins`` (admitting tickets at the door).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ticketing_web import csrf
from ticketing_web.routes import accounts, checkins, dashboard, orders, tickets

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf.check)])
for pages in (tickets.router, accounts.router, orders.router, dashboard.router, checkins.router):
    router.include_router(pages)

__all__ = ["router"]
