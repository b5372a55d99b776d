"""Senders of customer and staff notices: SMTP (mail.py) and an SMS gateway in MessageBird's shape (sms.py).

The outbox relay (services/notify/relay.py) sends what activities/notify.py wrote through these; the far ends the
demo and the tests talk to are fakes in dev/simulator/ (smtp_sink.py, sms_gateway.py).
"""
