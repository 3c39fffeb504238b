"""The auth service: users, sign-up, sign-in, sign-out and the current user (SPEC §3).

It owns the ``users`` table and the sign-in throttle counters; it publishes no
events. Sessions are the shared library's signed-JWT cookie, which every other
service verifies on its own.
"""
