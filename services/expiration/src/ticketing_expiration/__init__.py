"""Expiration service: schedules a Redis job per order and publishes expiration:complete."""
