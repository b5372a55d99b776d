"""Clients of payment providers: refunds of what a customer paid.

`base.py` is the interface the rest of orderflow codes against (`RefundProvider`, its request, result and the two
errors that say whether to try again); `provider.py` is the HTTP client of a Stripe-shaped REST API and owns that
API's wire models. The far end the demo and the tests talk to is a fake in dev/simulator/payment_provider.py,
served by the carrier simulator under /pay.
"""
