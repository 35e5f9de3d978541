"""The HTTP intake: events in ccpulse's own JSON contract POSTed by a CRM, a chat widget or a voice
bot, authenticated per tenant and produced to the raw topics (app.py; tokens.py)."""
