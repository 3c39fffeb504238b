"""What each endpoint does, with Stripe's rules, one module per resource:
``payment_intents`` (create, update, confirm, cancel, list; the parameters they read
in ``payment_intent_params``), ``charges`` (made by confirming an intent),
``refunds``, and ``payment_methods`` (the card a request names, by test name or
token). ``common`` holds what they all answer the same way: ``expand``, list pages
and retrieving by id.

Every operation reads its parameters first (a bad one is a 400 that changes
nothing and is not saved for an idempotency key), then takes the lock of the
object it changes, checks the object's state and changes it.
"""
