"""The tickets service: tickets for sale, listing, creating and editing them (SPEC §3).

It owns the ``tickets`` table and publishes ticket:created and ticket:updated
through its outbox. It listens to order:created and order:cancelled to lock a
ticket while an order holds it and to free it again (SPEC §4, flows 1 and 3), and to
count the units held and sold of a general-admission listing (docs/general-admission.md).
"""
