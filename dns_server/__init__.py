"""Authoritative DNS server for the zone ``atlas.``."""
