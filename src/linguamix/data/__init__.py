"""Data: benchmark loaders, linguamix's synthetic parallel tasks, and mixture building."""
