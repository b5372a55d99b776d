"""Money after the order: invoices (numbered gap-free) and the receivables ledger they and payments move."""
