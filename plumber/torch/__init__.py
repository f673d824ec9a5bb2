"""PyTorch DataLoader support: observation inside worker processes, plans, caching.

Nothing here imports torch at package import; each module does when used.
"""
