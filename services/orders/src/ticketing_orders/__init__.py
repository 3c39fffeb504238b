"""The orders service: buyers reserve tickets by ordering them (SPEC §3 ``/api/orders``, §4).

It owns the ``orders`` table and a replica of the tickets it can sell, filled
only by ticket:created / ticket:updated events in version order. It publishes
order:created and order:cancelled through the transactional outbox. An order
holds its ticket while created, awaiting payment or complete; the database,
through a partial unique index, decides which one of concurrent buyers gets it.
"""
