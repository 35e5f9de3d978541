"""Connectors for the platforms contact centres already run: their own records in, ccpulse's event
contract out (queue_log.py: Asterisk and FreePBX; follow.py: reading a growing file safely)."""
