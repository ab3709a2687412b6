"""Paper trading (account mode paper, docs/paper.md): a local engine mirroring the live book."""
