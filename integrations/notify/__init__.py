"""Customer and staff notices on their way out: templates, senders (SMTP, SMS gateway) and the outbox relay.

activities/notify.py renders a notice with `templates` and writes it to the outbox (the `notifications` table);
`relay` sends what is due through `mail.SmtpSender` and `sms.SmsGatewaySender`. `smtp_sink` and
`sms_gateway_sim` play the far ends for the demo and the tests.
"""
