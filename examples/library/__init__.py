"""Library book lending: members borrow book copies, at most three loans each."""
