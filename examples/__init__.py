"""Runnable sample applications for eventactors."""
