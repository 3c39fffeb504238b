"""The payments service: buyers pay for their orders by card (SPEC §3 ``/api/payments``, §4).

It owns the ``payments`` table and a replica of orders, filled only by
order:created / order:cancelled events in version order. A payment charges the
order's price through one Stripe PaymentIntent per order, so no retry or
concurrent request can charge twice; it publishes payment:created, and
payment:refunded when a charge meets a cancelled order. Each attempt is recorded
before the card is charged, and a reconciler settles, by asking Stripe, whatever
a crash left unknown: money is never kept without a ticket.
"""
