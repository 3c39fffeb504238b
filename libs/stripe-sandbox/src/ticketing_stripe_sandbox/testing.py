"""Pytest fixtures that start the Stripe sandbox when ``STRIPE_SECRET_KEY`` is unset."""
