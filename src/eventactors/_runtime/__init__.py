"""The asyncio actor runtime: one actor per live entity, mailboxes, recovery, passivation."""
