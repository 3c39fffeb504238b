"""A Stripe-compatible sandbox: the PaymentIntents and refunds the Stripe SDK sends, offline."""
