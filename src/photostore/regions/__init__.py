"""Regions: geo lookup of clients, region health, the region router and edge, CDN endpoints and URLs."""
