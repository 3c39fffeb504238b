"""Notifications service: mails buyers and sellers what happened to their orders, from events."""
