"""Payments service: charges orders through Stripe and publishes payment events."""
