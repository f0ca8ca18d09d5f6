"""Bank accounts: open, deposit, withdraw (never below zero), close."""
